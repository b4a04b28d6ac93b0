//! The ADS server's TLS changes while it serves: the next connection gets the new server
//! certificate and client CA bundle, connections already open keep theirs, and settings that
//! do not load are refused with the old ones still in force.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use gatehouse_xds::{AdsServer, Peer, SnapshotCache, TlsOptions, TlsReloader, XdsStats};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// (certificate PEM, key PEM) for `name`, signed by `ca`.
fn leaf(ca: &Ca, name: &str) -> (String, String) {
    let params = CertificateParams::new(vec![name.to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn options(server: &(String, String), client_cas: &str) -> TlsOptions {
    TlsOptions {
        cert_pem: server.0.clone(),
        key_pem: server.1.clone(),
        client_ca_pem: Some(client_cas.to_string()),
    }
}

/// Connects as a client trusting `server_ca` with `client`'s certificate; the server's leaf.
async fn connect(
    addr: std::net::SocketAddr,
    server_ca: &str,
    client: Option<&(String, String)>,
) -> std::io::Result<(
    CertificateDer<'static>,
    tokio_rustls::client::TlsStream<TcpStream>,
)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(server_ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("xds.test").unwrap(), tcp)
        .await?;
    // TLS 1.3 reports a refused client certificate on the first read.
    let mut byte = [0u8; 1];
    if let Ok(Err(e)) = tokio::time::timeout(Duration::from_millis(300), tls.read(&mut byte)).await
    {
        return Err(e);
    }
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    Ok((leaf, tls))
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn certificates_and_client_cas_change_for_new_connections_only() {
    let (old_ca, new_ca) = (ca("old CA"), ca("new CA"));
    let first = leaf(&old_ca, "xds.test");
    let renewed = leaf(&old_ca, "xds.test");
    let proxy_old = leaf(&old_ca, "proxy");
    let proxy_new = leaf(&new_ca, "proxy");

    let reloader = TlsReloader::new(&options(&first, &old_ca.pem)).unwrap();
    let grouper = Arc::new(|_: &Node, _: &Peer| Ok::<_, String>("ns/gw".to_string()));
    let server = AdsServer::new(SnapshotCache::new(), grouper, Arc::new(XdsStats::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(gatehouse_xds::serve_with_listener(
        listener,
        server,
        Some(reloader.clone()),
        async {
            let _ = stopped.await;
        },
    ));

    let (seen, open) = connect(addr, &old_ca.pem, Some(&proxy_old)).await.unwrap();
    assert_eq!(seen, der(&first.0));
    assert!(
        connect(addr, &old_ca.pem, None).await.is_err(),
        "a client without a certificate is refused"
    );
    assert!(
        connect(addr, &old_ca.pem, Some(&proxy_new)).await.is_err(),
        "the new CA is not trusted yet"
    );

    // Renewed certificate, and both CAs trusted (the first step of a CA rotation).
    let bundle = format!("{}{}", old_ca.pem, new_ca.pem);
    reloader.update(&options(&renewed, &bundle)).unwrap();
    let (seen, _) = connect(addr, &old_ca.pem, Some(&proxy_old)).await.unwrap();
    assert_eq!(
        seen,
        der(&renewed.0),
        "new connections get the renewed certificate"
    );
    let (seen, _) = connect(addr, &old_ca.pem, Some(&proxy_new)).await.unwrap();
    assert_eq!(seen, der(&renewed.0), "a proxy of the new CA is admitted");
    // The connection opened before the change is still up.
    let mut open = open;
    let mut buf = [0u8; 256];
    // It still reads the server's HTTP/2 preface and then waits: neither EOF nor an error.
    loop {
        match tokio::time::timeout(Duration::from_millis(300), open.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(n)) => assert!(n > 0, "the open connection was closed"),
            Ok(Err(e)) => panic!("the open connection failed: {e}"),
        }
    }

    // Settings that do not load are refused; the ones in force stay.
    let broken = TlsOptions {
        key_pem: "not a key".into(),
        ..options(&renewed, &bundle)
    };
    assert!(reloader.update(&broken).is_err());
    let (seen, _) = connect(addr, &old_ca.pem, Some(&proxy_new)).await.unwrap();
    assert_eq!(seen, der(&renewed.0));

    // A graceful shutdown waits for open connections: this one speaks no HTTP/2.
    drop(open);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}
