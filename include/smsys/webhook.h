/* webhook.h - provider webhooks on the service's HTTP server.
 *
 * URL scheme (docs/providers.md "Webhooks"):
 *   POST|GET /webhooks/<account-id>/<kind>[?token=<secret>]
 * <account-id> is the smsys_account id (the smsys_smssetting GUID);
 * <kind> ("status", "inbound", "callback") only labels logs and metrics:
 * the connector tells a receipt from an inbound message by its fields.
 * Authentication is the connector's (conn_ops.webhook): Twilio verifies
 * X-Twilio-Signature over the public URL (webhook_base_url + target), the
 * token providers compare ?token= with the account's webhook_token.
 *
 * The answer is given only after every event of the request is durable:
 * 200 once receipts are committed (queue_apply_states via the connector
 * manager, the same path as SMPP receipts); 503 when they could not be
 * stored, when an inbound message has no store yet, or when the account
 * is known but its connector is not open (the provider retries); 403 on
 * a bad signature or token (logged with the account, never the token);
 * 404 for an unknown account or a provider without webhooks; 400 for a
 * request the connector cannot parse. */
#ifndef SMSYS_WEBHOOK_H
#define SMSYS_WEBHOOK_H

#include "smsys/http_server.h"

struct connmgr;

#define WEBHOOK_PREFIX "/webhooks/"

/* Handles one request routed to WEBHOOK_PREFIX; answers resp exactly once
 * (now or after the commit). m may be NULL (connectors not started yet):
 * 503. m must outlive the pending answer (connmgr_close acks every
 * pending event first, so closing it answers the request). */
void webhook_handle(struct connmgr *m, struct http_req *req, struct http_resp *resp);

#endif
