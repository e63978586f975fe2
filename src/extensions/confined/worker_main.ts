/**
 * The body of a confined extension's worker, which runs with only the
 * permissions the extension's registration declared. The host starts the
 * worker from a tiny generated module that statically imports this one and
 * the extension's module (static imports are read with the host's
 * permission, so the worker needs no read access to code), then calls
 * {@linkcode serve}. Callbacks (recordHandle, step, output) become messages;
 * recordHandle waits for the host's acknowledgement so the handle is in the
 * journal before the extension's next side effect.
 *
 * @module
 */

import type { ConfigLocation } from "../../core/errors.ts";
import type { ConfigSource } from "../../config/types.ts";
import type { SandboxExtension } from "../base.ts";
import type { CreateContext, Logger } from "../types.ts";
import { type FromWorker, type SourceTable, toWire, type ToWorker } from "./protocol.ts";

let extension: SandboxExtension<unknown> | undefined;
const aborts = new Map<number, AbortController>();
const acks = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
let nextAck = 1;

// The worker global, typed by hand: this module is also type-checked with the window lib.
const worker = globalThis as unknown as {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
};

function send(message: FromWorker, transfer: Transferable[] = []): void {
  worker.postMessage(message, transfer);
}

const logger: Logger = {
  debug: (message) => send({ type: "log", level: "debug", message }),
  info: (message) => send({ type: "log", level: "info", message }),
  warn: (message) => send({ type: "log", level: "warn", message }),
  error: (message) => send({ type: "log", level: "error", message }),
};

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

async function call(id: number, method: string, args: unknown[], table?: SourceTable) {
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
        return await extension.fetch(args[0] as never, args[1] as string, args[2] as string, {
          signal,
        });
      case "destroy":
        return await extension.destroy(args[0] as never);
      case "workspaceOf":
        return extension.workspaceOf(args[0] as never) ?? null;
      case "close":
        return await extension.close();
      default:
        throw new Error(`unknown method ${method}`);
    }
  } finally {
    aborts.delete(id);
  }
}

/**
 * Answer the host's messages for the extension class exported by `module`.
 *
 * @param module The extension module's namespace.
 */
export function serve(module: Record<string, unknown>): void {
  worker.onmessage = (event) => void handle(module, event.data);
}

async function handle(module: Record<string, unknown>, message: ToWorker): Promise<void> {
  switch (message.type) {
    case "init":
      try {
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
