/**
 * The outcome of one `sandboxer doctor` check (doctor.ts, doctor_pool.ts).
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
}
