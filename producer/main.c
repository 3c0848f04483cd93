/* main.c - trawler-producer: fetch crawl requests from the frontier topic. */
#include <curl/curl.h>
#include <stdlib.h>

#include "lifecycle.h"
#include "metrics.h"
#include "producer.h"

int main(int argc, char **argv)
{
	tr_settings s;
	char **pos = NULL;
	int npos = 0, rc;
	rc = tr_lifecycle_init(&s, TR_EXE_PRODUCER, "producer",
			       "usage: trawler-producer [OPTIONS]\n"
			       "Fetches crawl requests from the frontier topic and publishes one "
			       "fetch result per request to the pages topic.",
			       argc, argv, &pos, &npos);
	if (rc == 0) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = tr_lifecycle_metrics(&s, "producer") == 0 ? tr_producer_run(&s) : 1;
		tr_metrics_shutdown();
		curl_global_cleanup();
	} else {
		rc = rc == 1 ? 0 : 2;
	}
	free(pos);
	tr_settings_free(&s);
	return rc;
}
