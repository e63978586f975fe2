/**
 * Signal numbers, for the shell convention that a process killed by signal N
 * exits with 128+N — locally and on the remote side alike.
 *
 * @module
 */

/** Linux numbers of the signals that end processes. */
const SIGNAL_NUMBERS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

/**
 * The exit code of a process killed by `signal`: 128 + its number.
 *
 * @param signal A name such as `SIGTERM`; SSH servers send it without the prefix (`TERM`).
 * @returns 128 + N (128 for an unknown signal).
 */
export function signalExitCode(signal: string): number {
  const name = signal.startsWith("SIG") ? signal : `SIG${signal}`;
  return 128 + (SIGNAL_NUMBERS[name] ?? 0);
}
