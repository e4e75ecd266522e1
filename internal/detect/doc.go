// Package detect is Vigil's streaming detection engine. It consumes accepted,
// enriched events in stream order (audit.Detector.Process), evaluates the
// rules of package rulelang in event time with keyed state (windows,
// sequences, baselines, open findings per tenant/rule/group key), keeps a
// compact profile per actor, scores every successful login, and persists all
// of it through an audit.StateStore at Checkpoint so that a restart or a
// replay yields the same findings. It does no I/O of its own beyond the
// StateStore and the fixture harness (RunFixtures) used by tests and
// `vigil rules test`.
package detect
