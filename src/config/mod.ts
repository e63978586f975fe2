/**
 * The configuration layer: profiles, extension registrations, the schema
 * language registrations use, `--set` overrides, durations and YAML with
 * locations for error messages.
 *
 * @module
 */

export type * from "./types.ts";
export { didYouMean, editDistance, suggestionSuffix } from "./did_you_mean.ts";
export { formatDuration, parseDuration } from "./duration.ts";
export { applyOverrides, type OverrideResult } from "./overrides.ts";
export {
  type ListedProfiles,
  listProfiles,
  loadProfile,
  type LoadProfileOptions,
  parseProfile,
  type ParseProfileOptions,
  PROFILE_KEYS,
  profileSearchPath,
  type ProfileSearchPathOptions,
} from "./profile.ts";
export {
  EXTENSION_ID_PATTERN,
  type LoadedRegistrations,
  loadRegistrations,
  type LoadRegistrationsOptions,
  parseRegistration,
  type ParseRegistrationOptions,
} from "./registration.ts";
export {
  describeValue,
  expandHome,
  FIELD_TYPES,
  parseRegistrationSchema,
  type SharedConfigSource,
  validateConfig,
  type ValidateOptions,
} from "./schema.ts";
export {
  fileSource,
  parseYamlDocument,
  splitFieldPath,
  withOverrides,
  type YamlDocument,
} from "./yaml_source.ts";
