//! End-to-end tests against a real kube-apiserver and etcd (`make kube-apiserver`, or
//! `$GATEHOUSE_KUBE_BIN_DIR`): the CRDs and their CEL rules, controller mode with real Envoy,
//! provisioning and xDS authentication, the Helm chart's RBAC, the cluster quickstart
//! (examples/in-cluster/). They run as root: Services'
//! endpoints live in a network namespace of each test's own (`support::testnet`).
//!
//! One binary for all of them; a module per area (`cargo test --test apiserver
//! provisioning_e2e::`). Every test starts its own API server, etcd and namespace on ports
//! and subnets of its own; none sets environment variables.

#[path = "../support/mod.rs"]
mod support;

mod apiserver_crds;
mod apiserver_experimental;
mod ca_rotation_e2e;
mod controller_e2e;
mod crd_coexistence_e2e;
mod grpc_route_controller_e2e;
mod helm_apiserver;
mod https_controller_e2e;
mod programmed_e2e;
mod provisioning_adoption_e2e;
mod provisioning_e2e;
mod quickstart_e2e;
mod xds_certificate_e2e;
