/* producer.h - trawler-producer's fetch loop: frontier in, fetch results out. */
#ifndef TR_PRODUCER_H
#define TR_PRODUCER_H

#include "settings.h"

/* Run until stopped (signal, or crawl complete with exit_when_done).
 * Returns the process exit status: 0 on a clean stop, 1 on a fatal error
 * (logged). Does network I/O; not re-entrant. */
int tr_producer_run(const tr_settings *s);

#endif
