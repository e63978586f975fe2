/**
 * npm:@commander-js/extra-typings (typed commander), pinned. Only the CLI
 * imports it. See `src/deps/yaml.ts` for why dependencies live here.
 *
 * @module
 */

export { Command, CommanderError, Option } from "npm:@commander-js/extra-typings@15.1.0";
