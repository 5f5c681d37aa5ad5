package etcd_test

import clientv3 "go.etcd.io/etcd/client/v3"

func clientv3WithPhysical() []clientv3.CompactOption {
	return []clientv3.CompactOption{clientv3.WithCompactPhysical()}
}
