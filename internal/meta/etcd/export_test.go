package etcd

import (
	"context"

	"github.com/messagebus/messagebus/internal/meta"
)

// WatchFrom starts a watch at an old revision, as one that fell behind does.
func (s *Store) WatchFrom(ctx context.Context, prefix string, rev int64) <-chan meta.Event {
	return s.watchFrom(ctx, prefix, rev)
}
