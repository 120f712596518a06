/**
 * pouch's version. The single-file build stamps the commit and build date here.
 *
 * @module
 */

/** pouch's release version. */
export const VERSION = "0.1.0";
/** The git commit the program was built from ("" when run from a checkout). */
export const GIT_COMMIT = "";
/** When the program was built ("" when run from a checkout). */
export const BUILD_TIME = "";
