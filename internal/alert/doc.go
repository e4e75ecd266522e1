// Package alert delivers lifecycle changes of findings and incidents to
// webhooks: subscriptions, the durable outbox and its worker, signing,
// formats and the guard that keeps receivers off private networks.
//
// The path of a change:
//
//	store (finding/incident write + audit.Change, one transaction)
//	  └─▶ fan-out: changes after the cursor × matching subscriptions
//	        └─▶ Enqueue: items into each subscription's open delivery,
//	            cursor advanced, in one transaction
//	              └─▶ seal: after BatchWindow (or BatchMax items) the
//	                  delivery's body is rendered once and stored
//	                    └─▶ send: signed POST, retried with exponential
//	                        backoff and jitter for RetryFor, then dead
//
// Every step is a transaction on the store, so a crash anywhere repeats
// at most the last step: a delivery keeps its id and its body, and the
// receiver deduplicates on the Vigil-Delivery header.
package alert
