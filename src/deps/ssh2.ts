/**
 * npm:ssh2, pinned, with its types from npm:@types/ssh2 (ssh2 ships none).
 * See `src/deps/yaml.ts` for why dependencies live here.
 *
 * @module
 */

// @ts-types="npm:@types/ssh2@1.15.6"
import ssh2 from "npm:ssh2@1.17.0";

export default ssh2;
// @ts-types="npm:@types/ssh2@1.15.6"
export type { ClientChannel, ConnectConfig, SFTPWrapper, Stats } from "npm:ssh2@1.17.0";
