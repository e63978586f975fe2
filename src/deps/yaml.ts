/**
 * npm:yaml, pinned. The files under `src/deps/` are the only ones with `npm:`
 * specifiers, so `mod.ts` imports by URL or from a checkout with no import
 * map, and each version is written once. One file per package, so an SDK
 * script never loads the CLI's argument parser.
 *
 * @module
 */

export {
  type Document,
  isCollection,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parse,
  parseDocument,
  stringify,
} from "npm:yaml@2.9.1";
