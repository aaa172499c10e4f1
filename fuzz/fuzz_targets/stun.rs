//! The signaling server's STUN responder: any datagram gets no answer or a
//! Binding success response that decodes and names the sender's address.
//! The first 19 bytes make up the sender's address (a byte for the family,
//! 16 of address, 2 of port), the rest is the datagram.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use gamenet_signaling::stun::answer;
use libfuzzer_sys::fuzz_target;
use rtc_stun::message::{BINDING_SUCCESS, Getter, Message};
use rtc_stun::xoraddr::XorMappedAddress;

fuzz_target!(|data: &[u8]| {
    if data.len() < 19 {
        return;
    }
    let (addr, packet) = data.split_at(19);
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&addr[1..17]);
    let ip = if addr[0] & 1 == 0 {
        IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(ip))
    };
    let from = SocketAddr::new(ip, u16::from_le_bytes([addr[17], addr[18]]));
    let Some(reply) = answer(packet, from) else {
        return;
    };
    let mut response = Message::new();
    response
        .unmarshal_binary(&reply)
        .unwrap_or_else(|e| panic!("the answer does not decode: {e}"));
    assert_eq!(response.typ, BINDING_SUCCESS);
    assert_eq!(&response.transaction_id.0[..], &packet[8..20]);
    let mut mapped = XorMappedAddress::default();
    mapped
        .get_from(&response)
        .unwrap_or_else(|e| panic!("no mapped address: {e}"));
    assert_eq!(SocketAddr::new(mapped.ip, mapped.port), from);
});
