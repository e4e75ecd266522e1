package ingest

// RejectFieldLabels is the number of field label values of
// vigil_ingest_rejects_total, "other" included.
func RejectFieldLabels() int { return len(rejectFields) + 1 }
