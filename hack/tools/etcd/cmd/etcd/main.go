// Command etcd runs the pinned etcd server (etcdmain is etcd's own entry point).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
