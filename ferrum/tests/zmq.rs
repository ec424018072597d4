//! Ferrum's ZMQ subscriber against an independent ZMQ implementation (the zeromq crate)
//! publishing messages shaped like bitcoind's `hashblock` notifications.

use std::time::Duration;

use ferrum::ZmqSubscriber as Subscriber;
use zeromq::{Socket, SocketSend};

#[tokio::test]
async fn receives_hashblock_notifications() {
    let mut publisher = zeromq::PubSocket::new();
    let port = testkit::free_port();
    publisher.bind(&format!("tcp://127.0.0.1:{port}")).await.unwrap();
    let mut sub = Subscriber::connect(&format!("127.0.0.1:{port}"), &["hashblock"]).await.unwrap();
    let hash = [0xabu8; 32];
    // A publisher drops messages until the subscription reaches it: send until one arrives.
    let received = tokio::time::timeout(Duration::from_secs(20), async {
        for seq in 0u32.. {
            for (topic, body) in [("rawtx", vec![1u8, 2, 3]), ("hashblock", hash.to_vec())] {
                let mut msg = zeromq::ZmqMessage::from(topic);
                msg.push_back(body.into());
                msg.push_back(seq.to_le_bytes().to_vec().into());
                publisher.send(msg).await.unwrap();
            }
            if let Ok(Ok(parts)) = tokio::time::timeout(Duration::from_millis(200), sub.recv()).await {
                return parts;
            }
        }
        unreachable!()
    })
    .await
    .expect("a notification within 20 s");
    // Only the subscribed topic arrives, in three parts as bitcoind sends them.
    assert_eq!(received.len(), 3);
    assert_eq!(received[0], b"hashblock");
    assert_eq!(received[1], hash);
    assert_eq!(received[2].len(), 4);
}

#[tokio::test]
async fn refuses_a_peer_that_is_not_zmq() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        use tokio::io::AsyncWriteExt;
        s.write_all(&[b'H'; 64]).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let e = Subscriber::connect(&addr, &["hashblock"]).await.err().unwrap();
    assert!(e.to_string().contains("not a ZMTP 3"), "{e}");
}
