/* version.h - the release version, shown by --version of every program. */
#ifndef SMSYS_VERSION_H
#define SMSYS_VERSION_H

#define SMSYS_VERSION "0.1.0"

#endif
