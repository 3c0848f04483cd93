/* consumer.h - trawler-consumer's processing loop: fetch results in, links
 * to the frontier, pages.jsonl out, completion tracked in Redis. */
#ifndef TR_CONSUMER_H
#define TR_CONSUMER_H

#include "settings.h"

/* Run until stopped (signal, or crawl complete with exit_when_done).
 * Returns the exit status: 0 on a clean stop, 1 on a fatal error (logged). */
int tr_consumer_run(const tr_settings *s);

#endif
