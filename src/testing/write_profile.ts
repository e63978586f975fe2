/**
 * The profile writer for unit tests in src/ and the suite in tests/ (re-exported there).
 *
 * @module
 */

/**
 * Write a profile YAML file.
 *
 * @param dir Directory to write into.
 * @param name Profile name (file `<name>.yaml`, id `profile.<name>`).
 * @param body The YAML after the id line.
 * @returns The file path.
 */
export async function writeProfile(dir: string, name: string, body: string): Promise<string> {
  const file = `${dir}/${name}.yaml`;
  await Deno.writeTextFile(file, `id: profile.${name}\n${body}`);
  return file;
}
