/**
 * How a confined extension's failures become sandboxer's typed errors: the
 * permissions it may not have, a worker that broke the protocol, and errors
 * the worker sent back across the thread boundary.
 *
 * @module
 */

import {
  ConfigError,
  ExtensionError,
  formatLocation,
  isErrorCode,
  PermissionError,
  SandboxerError,
} from "../../core/errors.ts";
import type { ExtensionCode, ResolvedPermissions } from "./permissions.ts";
import { ProtocolViolation, type WireError } from "./protocol.ts";
import { SDK_ENTRIES, SDK_PATHS, sdkPath } from "./sdk_paths.ts";

/** What the messages about one confined extension name; read fresh for each failure. */
export interface FailureContext {
  /** The registration id. */
  readonly id: string;
  /** The registration's file, where permissions are declared. */
  readonly registrationFile: string;
  /** Permissions it declares that sandboxer itself was not given. */
  readonly withheld: ResolvedPermissions | undefined;
  /** The directory of its module, when it is on disk. */
  readonly codeDir: string | undefined;
}

/** The worker's code files and module host must be within what sandboxer itself holds. */
export function checkHeld(context: FailureContext, code: ExtensionCode): void {
  if (code.remoteHost) {
    const host = code.remoteHost;
    if (Deno.permissions.querySync({ name: "import", host }).state !== "granted") {
      throw new PermissionError(
        "import",
        `${host}, where extension ${context.id} has its module, which sandboxer itself was not given`,
        `--allow-import=${host} on sandboxer's own command line, or install the extension locally`,
      );
    }
  }
  if (
    code.dir && Deno.permissions.querySync({ name: "read", path: code.dir }).state !== "granted"
  ) {
    throw new PermissionError(
      "read",
      `${code.dir}, where extension ${context.id} has its code, which sandboxer itself was not given`,
      `--allow-read=${code.dir} on sandboxer's own command line`,
    );
  }
}

/** `new Worker()` refused: the worker would hold more than sandboxer does. */
export function escalationError(
  context: FailureContext,
  error: unknown,
  permissions: Deno.PermissionOptionsObject,
): unknown {
  if (error instanceof URIError || error instanceof TypeError) {
    // An entry Deno cannot parse, written literally in the registration (values from a
    // profile were checked already).
    return new ExtensionError(
      context.id,
      `declares permissions Deno cannot grant (${
        firstLine(error.message)
      }); fix "permissions" in ${context.registrationFile}`,
      { cause: error },
    );
  }
  if (!(error instanceof Deno.errors.NotCapable)) return error;
  const asked = Object.entries(permissions)
    .filter(([, value]) => value !== false)
    .map(([kind]) => kind);
  return new PermissionError(
    asked.join("/") || "some",
    `what extension ${context.id} declares, more than sandboxer itself was given (Deno: ${
      firstLine(error.message)
    })`,
    `the matching --allow-* flags on sandboxer's own command line, or fewer permissions in ${context.registrationFile}`,
    { cause: error },
  );
}

/** The one-line error for a worker that broke the protocol. */
export function brokenError(context: FailureContext, error: unknown): Error {
  const reason = error instanceof ProtocolViolation
    ? error.message
    : `handling its message failed: ${firstLine(String((error as Error)?.message ?? error))}`;
  return new ExtensionError(
    context.id,
    `sent a malformed message (${reason}) and was stopped; report this to its author`,
    { cause: error },
  );
}

/** Rebuild an error the worker sent as one of ours (its class cannot cross the thread). */
export function fromWire(
  context: FailureContext,
  error: WireError,
  verb: string,
  signal?: AbortSignal,
): Error {
  const message = firstLine(error.message);
  const denied = /^Requires (\w+) access to "([^"]+)"/.exec(message);
  if (denied && (error.name === "NotCapable" || error.name === "TypeError")) {
    return deniedError(context, denied[1], denied[2], error.name === "TypeError");
  }
  if (error.name === "NotCapable") {
    return new ExtensionError(
      context.id,
      `${verb}: it asked for a permission its registration does not declare (Deno: ${message}); fix the extension or its registration ${context.registrationFile}`,
    );
  }
  if (error.name === "AbortError" && signal?.aborted) {
    return new DOMException(message, "AbortError");
  }
  if (error.name === "ConfigError" && error.location) {
    const prefix = `${formatLocation(error.location)}: `;
    const problem = message.startsWith(prefix) ? message.slice(prefix.length) : message;
    return new ConfigError(error.location, problem);
  }
  if (isErrorCode(error.code)) {
    // The class itself cannot cross the thread boundary; its name and stable code do.
    const rebuilt = new SandboxerError(error.code, message);
    rebuilt.name = error.name;
    return rebuilt;
  }
  return new ExtensionError(context.id, `${verb}: ${message}`);
}

/** A refused operation; `loading` when Deno refused to load a module (an import). */
function deniedError(
  context: FailureContext,
  kind: string,
  what: string,
  loading: boolean,
): Error {
  const withheld = Object.values(context.withheld ?? {}).some((list) => list.includes(what));
  if (withheld) {
    return new PermissionError(
      kind,
      `${what}, which extension ${context.id} declares but sandboxer itself was not given`,
      `--allow-${kind}=${what} on sandboxer's own command line`,
    );
  }
  const fix =
    `permissions.${kind}: ["${what}"] in ${context.registrationFile} (only if the extension really needs it)`;
  if (loading && kind === "read") {
    const dir = context.codeDir;
    const entry = SDK_ENTRIES.find((name) => what.endsWith(`/${name}`));
    if (entry !== undefined && !SDK_PATHS.includes(what)) {
      return new ExtensionError(
        context.id,
        `imports ${what}, which is neither in its module directory nor the SDK of the sandboxer that runs it; import the SDK from ${
          sdkPath(entry)
        }`,
      );
    }
    if (dir && what.startsWith(`${dir}/`)) {
      return new PermissionError(
        kind,
        `"${what}" by extension ${context.id}, whose code imports it: symbolic links and dot-files in its module directory are never granted`,
        `a regular file in place of it (a link could point anywhere)`,
      );
    }
    return new PermissionError(
      kind,
      `"${what}" by extension ${context.id}, whose code imports it from outside its module directory${
        dir ? ` ${dir}` : ""
      }`,
      fix,
    );
  }
  if (loading && kind === "import") {
    return new PermissionError(
      kind,
      `${what} by extension ${context.id}, whose code imports a module from there`,
      `a copy of that module in the extension's own directory (an extension's code loads only its own files, sandboxer's SDK and npm: packages)`,
    );
  }
  return new PermissionError(
    kind,
    `${
      kind === "read" || kind === "write" ? JSON.stringify(what) : what
    } by extension ${context.id}, which its registration does not declare`,
    fix,
  );
}

/** The first line of a message, capped so a hostile worker cannot flood the terminal. */
export function firstLine(text: string): string {
  const line = text.split("\n", 1)[0].trim();
  return line.length > 2000 ? `${line.slice(0, 2000)}…` : line;
}
