/**
 * The entry module of a confined extension's worker, which runs with only
 * the permissions the extension's registration declares plus read access to
 * the regular files of the extension's own module directory.
 *
 * How its code is kept from reading files by importing them: Deno loads the
 * statically visible imports of a worker's entry with the parent's
 * permission and no read check, but checks every file of a module graph
 * loaded by a specifier computed at run time against the worker's own
 * grants. So this entry statically imports sandboxer's SDK (`mod.ts`,
 * `extension.ts`, `errors.ts`, with
 * the npm packages it uses) and nothing of the extension; the extension is
 * loaded by the URL the host sends, and its imports of the SDK by that same
 * URL find the modules already loaded. Any other file its code imports —
 * statically, by a literal `import()`, as text or JSON — must be in its
 * grants, or the load fails with "Requires read access".
 *
 * Callbacks (recordHandle, step, output) become messages; recordHandle waits
 * for the host's acknowledgement so the handle is in the journal before the
 * extension's next side effect. This is an entry point, like `main.ts`: no
 * module imports it.
 *
 * @module
 */

import "../../../mod.ts";
import "../../../extension.ts";
import "../../../errors.ts";
import type { ConfigLocation } from "../../core/errors.ts";
import type { ConfigSource } from "../../config/types.ts";
import type { SandboxExtension } from "../base.ts";
import type { CreateContext } from "../types.ts";
import type { Logger } from "../../core/types.ts";
import {
  type FromWorker,
  type Method,
  type SourceTable,
  toWire,
  type ToWorker,
} from "./protocol.ts";

let extension: SandboxExtension<unknown> | undefined;
const aborts = new Map<number, AbortController>();
const acks = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
let nextAck = 1;

// The worker global, typed by hand: this module is also type-checked with the window lib.
const worker = globalThis as unknown as {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  close: () => void;
};
const post = worker.postMessage.bind(worker);

function send(message: FromWorker, transfer: Transferable[] = []): void {
  post(message, transfer);
}

const logger: Logger = {
  debug: (message) => send({ type: "log", level: "debug", message: String(message) }),
  info: (message) => send({ type: "log", level: "info", message: String(message) }),
  warn: (message) => send({ type: "log", level: "warn", message: String(message) }),
  error: (message) => send({ type: "log", level: "error", message: String(message) }),
};

/**
 * Ending the worker from inside would leave the host waiting for an answer
 * that never comes (and a journal record in `creating`): make both ways an
 * error the call reports instead.
 */
function forbidExit(): void {
  const refuse = (what: string) => () => {
    throw new Error(
      `${what} is not available to a confined extension; return or throw from the call instead`,
    );
  };
  (Deno as { exit: unknown }).exit = refuse("Deno.exit()");
  worker.close = refuse("close()");
}

function waitAck(make: (ackId: number) => FromWorker): Promise<void> {
  const ackId = nextAck++;
  return new Promise<void>((resolve, reject) => {
    acks.set(ackId, { resolve, reject });
    send(make(ackId));
  });
}

function sourceFrom(table: SourceTable): ConfigSource {
  return {
    file: table.file,
    locate(field: string): ConfigLocation {
      for (
        let path = field;
        path !== "";
        path = path.slice(0, Math.max(0, path.lastIndexOf(".")))
      ) {
        const found = table.fields[path];
        if (found) return { ...found, field };
        if (!path.includes(".")) break;
      }
      return { file: table.file, field };
    },
  };
}

async function call(
  id: number,
  method: Method,
  args: unknown[],
  table?: SourceTable,
): Promise<unknown> {
  if (!extension) throw new Error("extension not initialised");
  const controller = new AbortController();
  aborts.set(id, controller);
  const signal = controller.signal;
  const output = (type: "stdout" | "stderr") => (chunk: Uint8Array) => {
    const copy = chunk.slice();
    send({ type, id, chunk: copy }, [copy.buffer]);
  };
  try {
    switch (method) {
      case "parseConfig":
        return extension.parseConfig(args[0] as never, sourceFrom(table!), args[1] as never);
      case "create": {
        const ctx = args[0] as Record<string, unknown>;
        const handle = await extension.create({
          ...(ctx as object as CreateContext<unknown>),
          signal,
          recordHandle: (handle) =>
            waitAck((ackId) => ({
              type: "recordHandle",
              id,
              ackId,
              handle,
              workspace: extension!.workspaceOf(handle) ?? null,
            })),
          step: (name) => waitAck((ackId) => ({ type: "step", id, ackId, name })),
        });
        return { handle, workspace: extension.workspaceOf(handle) ?? null };
      }
      case "exec":
        return await extension.exec(args[0] as never, args[1] as string[], {
          stdout: output("stdout"),
          stderr: output("stderr"),
          stdin: args[2] as Uint8Array | undefined,
          cwd: args[3] as string | undefined,
          signal,
        });
      case "sync": {
        if (!extension.sync) throw new Error("this extension has no sync()");
        const options = args[2] as Record<string, unknown>;
        return await extension.sync(args[0] as never, args[1] as string, {
          ...options,
          signal,
          onProgress: options.progress
            ? (progress) => send({ type: "progress", id, progress })
            : undefined,
        });
      }
      case "fetch":
        if (!extension.fetch) throw new Error("this extension has no fetch()");
        await extension.fetch(args[0] as never, args[1] as string, args[2] as string, {
          signal,
        });
        return null;
      case "destroy":
        await extension.destroy(args[0] as never);
        return null;
      case "workspaceOf":
        return extension.workspaceOf(args[0] as never) ?? null;
      case "close":
        await extension.close();
        return null;
      default:
        throw new Error(`unknown method ${method}`);
    }
  } finally {
    aborts.delete(id);
  }
}

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case "init":
      try {
        forbidExit();
        // A computed specifier: Deno checks the extension's whole module graph against this
        // worker's grants. Never import the extension statically or by a literal here.
        const module: Record<string, unknown> = await import(message.moduleUrl);
        const Class = module[message.exportName];
        if (typeof Class !== "function") {
          throw new Error(`the module has no exported class "${message.exportName}"`);
        }
        extension = new (Class as new (options: unknown) => SandboxExtension<unknown>)({
          logger,
          acceptNewHostKey: message.acceptNewHostKey,
          home: message.home,
        });
        for (const method of ["create", "exec", "destroy", "parseConfig"] as const) {
          if (typeof extension[method] !== "function") {
            throw new Error(
              `class "${message.exportName}" has no ${method}(); extend SandboxExtension`,
            );
          }
        }
        send({ type: "ready", extensionId: String(extension.id) });
      } catch (error) {
        send({ type: "initError", error: toWire(error) });
      }
      return;
    case "call":
      try {
        const value = await call(message.id, message.method, message.args, message.source);
        send({ type: "result", id: message.id, value: value ?? null });
      } catch (error) {
        send({ type: "error", id: message.id, error: toWire(error) });
      }
      return;
    case "abort":
      aborts.get(message.id)?.abort(new DOMException("Aborted", "AbortError"));
      return;
    case "ack": {
      const waiter = acks.get(message.id);
      acks.delete(message.id);
      if (message.error) waiter?.reject(new Error(message.error.message));
      else waiter?.resolve();
      return;
    }
  }
}

// An error nothing caught ends the extension: say so in one message instead of letting Deno
// print a stack trace over sandboxer's output.
globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  send({ type: "crashed", error: toWire(event.error ?? event.message) });
});
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  send({ type: "crashed", error: toWire(event.reason) });
});
worker.onmessage = (event) => void handle(event.data);
