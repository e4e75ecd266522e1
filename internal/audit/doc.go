// Package audit is Vigil's domain: audit events and the v1 event catalog,
// enrichment, findings, tenants and API keys, and the small role interfaces
// (EventStream, EventStore, Enricher, Detector, FindingStore, …) through which
// the core talks to adapters.
//
// The package imports only the standard library. It knows nothing about SQL,
// HTTP or NATS: adapters translate to and from these types, and their
// conformance to the contracts written on the interfaces is checked by
// internal/storetest.
package audit
