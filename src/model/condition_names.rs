//! Condition types and reasons Gatehouse writes, in one place. Gateway API uses one vocabulary
//! for both (type `Accepted`, reason `Accepted`), so they share one namespace here; the names
//! not in Gateway API are Gatehouse's own and documented in docs/operations.md.

// Types.
pub const ACCEPTED: &str = "Accepted";
pub const ATTACHED: &str = "Attached";
pub const CONFLICTED: &str = "Conflicted";
pub const IMPLEMENTED: &str = "Implemented";
pub const PARTIALLY_INVALID: &str = "PartiallyInvalid";
pub const PROGRAMMED: &str = "Programmed";
pub const RESOLVED_REFS: &str = "ResolvedRefs";
pub const ROUTE_CACHE_SAFE: &str = "RouteCacheSafe";

// Reasons.
pub const ADDRESS_NOT_ASSIGNED: &str = "AddressNotAssigned";
pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
pub const CLEAR_ROUTE_CACHE: &str = "ClearRouteCache";
pub const EXTENSION_NOT_FOUND: &str = "ExtensionNotFound";
pub const HOSTNAME_CONFLICT: &str = "HostnameConflict";
pub const INVALID: &str = "Invalid";
pub const INVALID_CA_CERTIFICATE_KIND: &str = "InvalidCACertificateKind";
pub const INVALID_CA_CERTIFICATE_REF: &str = "InvalidCACertificateRef";
pub const INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
pub const INVALID_CLIENT_CERTIFICATE_REF: &str = "InvalidClientCertificateRef";
pub const INVALID_BACKEND_TLS_POLICY: &str = "InvalidBackendTLSPolicy";
pub const INVALID_EXTENSION: &str = "InvalidExtension";
pub const INVALID_KIND: &str = "InvalidKind";
pub const INVALID_PARAMETERS: &str = "InvalidParameters";
pub const INVALID_ROUTE_KINDS: &str = "InvalidRouteKinds";
pub const INVALID_SPEC: &str = "InvalidSpec";
pub const NO_CONFLICTS: &str = "NoConflicts";
pub const NO_EFFECT: &str = "NoEffect";
pub const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
pub const NO_VALID_CA_CERTIFICATE: &str = "NoValidCACertificate";
pub const NO_RESOURCES: &str = "NoResources";
pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
pub const OVERRIDDEN: &str = "Overridden";
pub const PENDING: &str = "Pending";
pub const PORT_UNAVAILABLE: &str = "PortUnavailable";
pub const PROTOCOL_CONFLICT: &str = "ProtocolConflict";
pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
pub const UNSUPPORTED_FIELD: &str = "UnsupportedField";
pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
