package natsstream

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil/internal/audit"
)

// Status is what `vigil cluster status` shows of the stream.
type Status struct {
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
	// Leader is the NATS server leading the stream's replicas; Peers the
	// others. Both are empty on a single server.
	Leader string `json:"leader,omitempty"`
	Peers  []Peer `json:"peers,omitempty"`
	First  uint64 `json:"first_seq"`
	Last   uint64 `json:"last_seq"`
	Msgs   uint64 `json:"records"`
	Bytes  uint64 `json:"bytes"`
	// Positions are the consumers' committed positions (the pipeline's),
	// by key in the offsets bucket: a consumer's whole-stream position
	// under its name, its position in partition P under NAME.pP.
	Positions map[string]uint64 `json:"positions"`
}

// Peer is one follower replica of the stream.
type Peer struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline,omitempty"`
	// Lag is how many replication operations it is behind the leader.
	Lag uint64 `json:"lag"`
}

// Inspect reads the stream's state without changing it (Open creates or
// updates the stream; Inspect only looks).
func Inspect(ctx context.Context, opts Options) (*Status, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	copts := []nats.Option{nats.Name("vigil cluster status"), nats.Timeout(opts.Timeout)}
	if opts.CredsFile != "" {
		copts = append(copts, nats.UserCredentials(opts.CredsFile))
	}
	nc, err := nats.Connect(opts.URL, copts...)
	if err != nil {
		return nil, audit.Errorf(audit.EUNAVAILABLE, "connect to NATS: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(opts.Timeout))
	if err != nil {
		return nil, fmt.Errorf("natsstream: %w", err)
	}
	st, err := js.Stream(ctx, opts.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, audit.Errorf(audit.ENOTFOUND, "NATS has no stream %s (a node creates it when it starts)", opts.Name)
	}
	if err != nil {
		return nil, unavailable("read the JetStream stream", err)
	}
	info := st.CachedInfo()
	out := &Status{Name: opts.Name, Replicas: info.Config.Replicas, First: info.State.FirstSeq, Last: info.State.LastSeq,
		Msgs: info.State.Msgs, Bytes: info.State.Bytes, Positions: map[string]uint64{}}
	if c := info.Cluster; c != nil {
		out.Leader = c.Leader
		for _, p := range c.Replicas {
			out.Peers = append(out.Peers, Peer{Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag})
		}
		sort.Slice(out.Peers, func(i, j int) bool { return out.Peers[i].Name < out.Peers[j].Name })
	}
	kv, err := js.KeyValue(ctx, opts.Name+"_offsets")
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, unavailable("read the consumer positions", err)
	}
	if out.Positions, err = positions(ctx, kv); err != nil {
		return nil, err
	}
	return out, nil
}
