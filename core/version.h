/* version.h - the one version string of every shardmq program.
 *
 * The broker, the tools and the library share it: `PROGRAM --version`
 * prints "PROGRAM version SMQ_VERSION" (mosquitto's wording). Bump it here
 * and nowhere else.
 */
#ifndef SMQ_VERSION_H
#define SMQ_VERSION_H

#define SMQ_VERSION "0.2.0"

#endif
