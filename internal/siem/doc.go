// Package siem streams findings, incidents and optionally raw events to
// the operator's SIEM collectors: NDJSON batches over HTTPS and RFC 5424
// syslog over TCP or TLS (RFC 6587 octet counting, RFC 5425).
//
// Delivery is at least once. Each sink keeps a durable cursor over the
// change log alerting records with every finding and incident write
// (audit.SIEMStore) and, for raw events, a detached consumer position in
// the event stream; both move only after the collector accepted a batch
// (a 2xx answer; for syslog a flushed write). A batch's id is derived
// from the positions it covers, so a resent batch carries the same id.
//
// A sink never holds ingestion back: its stream consumer is detached (not
// counted in the backlog that drives backpressure) and bounds its own lag
// (Options.MaxEventLag), and the change log it holds is bounded
// (Options.MaxChanges, MaxChangeAge). What a bound discards is counted
// (vigil_siem_dropped_total), logged and sent to the collector as a gap
// record.
package siem
