import { Command } from "../../deps/commander.ts";
import { UsageError } from "../../core/errors.ts";
import { run } from "../../process/run.ts";
import type { CliContext } from "../context.ts";
import { sshAccess } from "../ssh_access.ts";

/** One `[LOCAL:]REMOTE_PORT` word. */
interface Forward {
  local: number;
  remote: number;
}

/**
 * `sandboxer forward ID [LOCAL:]REMOTE_PORT…`: local ports to ports on the
 * sandbox's host, over one OpenSSH connection, until Ctrl-C.
 *
 * @param ctx The CLI context.
 * @returns The command.
 */
export function forwardCommand(ctx: CliContext) {
  return new Command("forward")
    .description("Forward local ports to ports on a sandbox's host until Ctrl-C")
    .argument("<id>", "sandbox id")
    .argument("<ports...>", "[LOCAL:]REMOTE_PORT; LOCAL 0 picks a free port")
    .option("--bind <address>", "local address to listen on", "127.0.0.1")
    .action(async (id: string, words: string[], flags: { bind: string }) => {
      const forwards = words.map(parseForward);
      const access = await sshAccess(await (await ctx.manager()).show(id));
      // Bound and released first: a taken port is refused here, and readiness below can then
      // trust that whoever answers on it is ssh.
      for (const f of forwards) f.local = await bindable(flags.bind, f.local);
      const argv: [string, ...string[]] = [
        "ssh",
        "-F",
        access.configFile,
        "-N",
        "-T",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "LogLevel=ERROR",
        ...forwards.flatMap((f) => ["-L", `${flags.bind}:${f.local}:localhost:${f.remote}`]),
        access.alias,
      ];
      const stop = new AbortController();
      const onInterrupt = () => stop.abort(new DOMException("Interrupted", "AbortError"));
      ctx.signal.addEventListener("abort", onInterrupt, { once: true });
      const ssh = run(argv, { allowFailure: true, signal: stop.signal });
      ssh.catch(() => {});
      try {
        const exited = await Promise.race([
          ssh.then((result) => result),
          listening(flags.bind, forwards, stop.signal).then(() => undefined),
        ]);
        if (exited !== undefined) throw forwardFailure(id, exited.stderr);
        for (const f of forwards) {
          ctx.output.out(`${flags.bind}:${f.local} -> ${access.alias}:${f.remote}\n`);
        }
        ctx.logger.info("forwarding; press Ctrl-C to stop");
        const result = await ssh;
        throw forwardFailure(id, result.stderr);
      } catch (error) {
        if (!ctx.signal.aborted) throw error;
        ctx.logger.info("forwarding stopped");
      } finally {
        ctx.signal.removeEventListener("abort", onInterrupt);
        stop.abort();
      }
    });
}

function parseForward(word: string): Forward {
  const match = /^(?:(\d{1,5}):)?(\d{1,5})$/.exec(word);
  const local = Number(match?.[1] ?? 0);
  const remote = Number(match?.[2] ?? 0);
  if (!match || local > 65535 || remote < 1 || remote > 65535) {
    throw new UsageError(
      `Cannot forward ${
        JSON.stringify(word)
      }: write [LOCAL:]REMOTE_PORT with ports from 1 to 65535 (LOCAL 0 picks a free one)`,
    );
  }
  return { local: match[1] === undefined ? remote : local, remote };
}

/** `port` (or a free one for 0) after checking it can be bound on `hostname`. */
async function bindable(hostname: string, port: number): Promise<number> {
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ hostname, port });
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new UsageError(
      `Cannot forward ${hostname}:${port}: ${
        error instanceof Error ? error.message.split(" (os error")[0] : String(error)
      }; pick another local port, or 0 for a free one`,
    );
  }
  const bound = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await Promise.resolve();
  return bound;
}

/** Resolves once every local port accepts connections (ssh has bound them all). */
async function listening(
  hostname: string,
  forwards: readonly Forward[],
  signal: AbortSignal,
): Promise<void> {
  for (const f of forwards) {
    while (!signal.aborted) {
      try {
        (await Deno.connect({ hostname, port: f.local })).close();
        break;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
  // Never resolve once stopped: the ssh side of the race reports why.
  if (signal.aborted) await new Promise(() => {});
}

function forwardFailure(id: string, stderr: string): UsageError {
  const said = stderr.trim().split("\n").filter(Boolean).at(-1) ?? "ssh exited";
  return new UsageError(
    `Cannot forward ports of sandbox "${id}": ${said}; pick other local ports (or 0) and check that the sandbox is reachable ("sandboxer ssh ${id} -- true")`,
  );
}
