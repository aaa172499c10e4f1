//! A STUN responder (RFC 8489 Binding only): tells each client the address its
//! packets come from, which WebRTC turns into server-reflexive candidates. No
//! authentication, no relaying: that is TURN's job (coturn).

use std::net::SocketAddr;

use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter, TransactionId};
use rtc_stun::xoraddr::XorMappedAddress;

/// The answer to a UDP datagram from `from`: a Binding success response with
/// its XOR-MAPPED-ADDRESS for a Binding request, `None` for anything else
/// (which is dropped without a word, so the port cannot be used to reflect
/// traffic at someone else in volume).
pub fn answer(packet: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    if !rtc_stun::message::is_stun_message(packet) {
        return None;
    }
    let mut request = Message::new();
    request.unmarshal_binary(packet).ok()?;
    if request.typ != BINDING_REQUEST {
        return None;
    }
    let mut response = Message::new();
    let setters: [Box<dyn Setter>; 4] = [
        Box::new(TransactionId(request.transaction_id.0)),
        Box::new(BINDING_SUCCESS),
        Box::new(XorMappedAddress {
            ip: from.ip(),
            port: from.port(),
        }),
        Box::new(FINGERPRINT),
    ];
    response.build(&setters).ok()?;
    Some(response.raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rtc_stun::message::Getter;

    fn binding_request() -> Message {
        let mut m = Message::new();
        let setters: [Box<dyn Setter>; 2] =
            [Box::new(TransactionId([7; 12])), Box::new(BINDING_REQUEST)];
        m.build(&setters).unwrap();
        m
    }

    #[test]
    fn a_binding_request_gets_the_senders_address() {
        for from in ["203.0.113.9:40000", "[2001:db8::1]:5000"] {
            let from: SocketAddr = from.parse().unwrap();
            let reply = answer(&binding_request().raw, from).unwrap();
            let mut response = Message::new();
            response.unmarshal_binary(&reply).unwrap();
            assert_eq!(response.typ, BINDING_SUCCESS);
            assert_eq!(response.transaction_id.0, [7; 12]);
            let mut mapped = XorMappedAddress::default();
            mapped.get_from(&response).unwrap();
            assert_eq!(SocketAddr::new(mapped.ip, mapped.port), from);
        }
    }

    #[test]
    fn other_messages_get_no_answer() {
        let from: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let mut response = binding_request();
        response.set_type(BINDING_SUCCESS);
        response.encode();
        assert_eq!(answer(&response.raw, from), None);
        assert_eq!(answer(b"GET / HTTP/1.1\r\n\r\n", from), None);
        assert_eq!(answer(&[], from), None);
        // A truncated request.
        assert_eq!(answer(&binding_request().raw[..19], from), None);
    }

    proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(
            packet in proptest::collection::vec(any::<u8>(), 0..600),
            stun_header in any::<bool>(),
        ) {
            let mut packet = packet;
            if stun_header && packet.len() >= 20 {
                // Make it look like STUN so the parser gets past the first check.
                packet[0] &= 0x3f;
                packet[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
                let len = (packet.len() as u16 - 20) & !3;
                packet[2..4].copy_from_slice(&len.to_be_bytes());
            }
            let _ = answer(&packet, "10.0.0.1:1".parse().unwrap());
        }
    }
}
