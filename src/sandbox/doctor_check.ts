/**
 * The outcome of one `sandboxer doctor` check (doctor.ts, doctor_pool.ts, doctor_boot.ts).
 *
 * @module
 */

/** The outcome of one check. */
export interface DoctorCheck {
  /** `true` passed, `false` failed, `undefined` could not be checked. */
  ok: boolean | undefined;
  /** What was checked, and what was found. */
  line: string;
  /** On failure: what to do. */
  fix?: string;
  /** On a passed check: something worth knowing that does not fail it (e.g. slow boots). */
  note?: string;
}
