/** The tool's version: `--version`, and what every report names as its writer. Kept equal to package.json's. */
export const VERSION = '0.1.0';
