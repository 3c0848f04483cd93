/* main.c - trawler-consumer: process fetch results from the pages topic. */
#include <curl/curl.h>
#include <stdlib.h>

#include "consumer.h"
#include "lifecycle.h"
#include "metrics.h"
#include "links.h"

int main(int argc, char **argv)
{
	tr_settings s;
	char **pos = NULL;
	int npos = 0, rc;
	rc = tr_lifecycle_init(&s, TR_EXE_CONSUMER, "consumer",
			       "usage: trawler-consumer [OPTIONS]\n"
			       "Processes fetch results from the pages topic: extracts and admits "
			       "links, writes pages.jsonl, tracks completion.",
			       argc, argv, &pos, &npos);
	if (rc == 0) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		tr_links_global_init();
		rc = tr_lifecycle_metrics(&s, "consumer") == 0 ? tr_consumer_run(&s) : 1;
		tr_metrics_shutdown();
		tr_links_global_cleanup();
		curl_global_cleanup();
	} else {
		rc = rc == 1 ? 0 : 2;
	}
	free(pos);
	tr_settings_free(&s);
	return rc;
}
