import assert from "node:assert/strict";
import { didYouMean, editDistance, suggestionSuffix } from "./did_you_mean.ts";

Deno.test("editDistance() counts a swap of neighbours as one edit", () => {
  assert.equal(editDistance("setpu", "setup"), 1);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("same", "same"), 0);
});

Deno.test("didYouMean() finds the closest dotted path, ignoring case", () => {
  const known = ["target.host", "target.port", "target.user", "workspace.root"];
  assert.equal(didYouMean("target.hots", known), "target.host");
  assert.equal(didYouMean("tagret.port", known), "target.port");
  assert.equal(didYouMean("Target.User", known), "target.user");
  assert.equal(didYouMean("workspace.rot", known), "workspace.root");
});

Deno.test("didYouMean() stays quiet when nothing is close", () => {
  assert.equal(didYouMean("colour", ["size", "shape"]), undefined);
  assert.equal(didYouMean("ab", ["xy"]), undefined);
  assert.equal(didYouMean("x", []), undefined);
  // identical words are not suggestions
  assert.equal(didYouMean("host", ["host"]), undefined);
});

Deno.test("didYouMean() allows more edits for longer words", () => {
  assert.equal(didYouMean("identity_fiel", ["identity_file"]), "identity_file");
  assert.equal(didYouMean("idnetity_fiel", ["identity_file"]), "identity_file");
  assert.equal(didYouMean("tl", ["ttl"]), "ttl");
  assert.equal(didYouMean("tx", ["ttl"]), undefined);
});

Deno.test("suggestionSuffix() formats the hint", () => {
  assert.equal(suggestionSuffix("setpu", ["setup", "sync"]), ` (did you mean "setup"?)`);
  assert.equal(suggestionSuffix("zzz", ["setup"]), "");
});
