use envoy_types as _;
use gateway_api as _;
use k8s_openapi as _;
use kube as _;
use prost_reflect as _;
use protox as _;
fn main() {}
