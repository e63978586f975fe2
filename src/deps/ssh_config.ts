/**
 * npm:ssh-config, pinned. See `src/deps/yaml.ts` for why dependencies live
 * here.
 *
 * @module
 */

import SSHConfig from "npm:ssh-config@5.3.0";

export default SSHConfig;
