// etcd, built from its Go module at the version k8s.io/kubernetes v1.33 is tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
