import { Command } from "../../deps/commander.ts";
import type { CachedImage } from "../../extensions/vm_packer/image/cache.ts";
import type { CliContext } from "../context.ts";
import { escapeControl, json } from "../output.ts";
import { collect } from "./create.ts";

/**
 * `sandboxer image build|list|rm`.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function imageCommand(ctx: CliContext) {
  const image = new Command("image")
    .description("Build, list and remove the Packer-built VM images of boot-mode profiles");
  image.addCommand(
    new Command("build")
      .description(
        "Run packer build on the profile's template (cached by content: the same inputs reuse the image)",
      )
      .requiredOption("--profile <profile>", "a boot-mode ext.vm-packer profile")
      .option("--force", "rebuild even when the cache has the image")
      .option(
        "--set <path=value>",
        "override a profile field (repeatable)",
        collect,
        [] as string[],
      )
      .option("--json", "print the image's manifest as JSON")
      .action(async (options) => {
        const started = performance.now();
        const { image, built } = await (await ctx.manager()).buildImage(options.profile, {
          force: options.force,
          overrides: options.set,
          signal: ctx.signal,
        });
        if (options.json) return ctx.output.out(json({ ...image.manifest, dir: image.dir, built }));
        ctx.output.out(
          `${built ? "built" : "cached"} ${image.manifest.key.slice(0, 12)} ${image.dir} (${
            mib(image.manifest.size)
          }${built ? `, ${Math.round((performance.now() - started) / 1000)}s` : ""})\n`,
        );
      }) as unknown as Command,
  );
  image.addCommand(
    new Command("list")
      .description("List cached images")
      .option("--json", "print a JSON array of manifests")
      .action(async (options) => {
        const images = await (await ctx.manager()).images();
        if (options.json) {
          return ctx.output.out(json(images.map((i) => ({ ...i.manifest, dir: i.dir }))));
        }
        ctx.output.out(table(images));
      }) as unknown as Command,
  );
  image.addCommand(
    new Command("rm")
      .description("Remove a cached image (refused while a sandbox's VM boots from it)")
      .argument("<key>", "the image key, or 6+ leading digits of it")
      .action(async (key) => {
        const removed = await (await ctx.manager()).removeImage(key);
        ctx.output.out(`removed ${removed.manifest.key.slice(0, 12)} ${removed.dir}\n`);
      }) as unknown as Command,
  );
  return image;
}

function mib(bytes: number): string {
  return `${Math.round(bytes / 1024 / 1024)} MiB`;
}

function table(images: readonly CachedImage[]): string {
  if (!images.length) return "No images built.\n";
  const rows = [["KEY", "PROFILE", "SIZE", "CREATED", "TEMPLATE"]];
  for (const { manifest: m } of images) {
    rows.push([m.key.slice(0, 12), m.profile, mib(m.size), m.created_at, m.template]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => escapeControl(r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()))
    .join("\n") + "\n";
}
