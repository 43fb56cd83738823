//! Relay socket binding: random ports from the configured range, EVEN-PORT pairs and
//! RESERVATION-TOKENs (the odd port kept for the RTCP allocation that follows).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::allocation::{Family, PortRequest};
use crate::core::{BindError, RelayBound};

/// How long a reserved port waits for its allocation (RFC 8656: about 30 s).
const RESERVATION_TTL: Duration = Duration::from_secs(30);
const ATTEMPTS: usize = 64;

/// Binds relay sockets for all shards.
#[derive(Debug)]
pub struct RelayPorts {
    bind_v4: Option<IpAddr>,
    bind_v6: Option<IpAddr>,
    adv_v4: Option<IpAddr>,
    adv_v6: Option<IpAddr>,
    min: u16,
    max: u16,
    reservations: Mutex<HashMap<[u8; 8], (UdpSocket, SocketAddr, Instant)>>,
}

impl RelayPorts {
    pub fn new(
        bind_v4: Option<IpAddr>,
        bind_v6: Option<IpAddr>,
        adv_v4: Option<IpAddr>,
        adv_v6: Option<IpAddr>,
        min: u16,
        max: u16,
    ) -> Self {
        RelayPorts {
            bind_v4,
            bind_v6,
            adv_v4: adv_v4.or(bind_v4),
            adv_v6: adv_v6.or(bind_v6),
            min,
            max,
            reservations: Mutex::new(HashMap::new()),
        }
    }

    fn try_bind(ip: IpAddr, port: u16) -> Option<UdpSocket> {
        let addr = SocketAddr::new(ip, port);
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            None,
        )
        .ok()?;
        if addr.is_ipv6() {
            s.set_only_v6(true).ok()?;
        }
        // Room for bursts while the relay task waits for a CPU (the kernel caps these values).
        let _ = s.set_recv_buffer_size(1 << 20);
        let _ = s.set_send_buffer_size(1 << 20);
        s.bind(&addr.into()).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s.into())
    }

    /// Bind a relay socket for `family` as `port` asks; returns the socket and what to advertise.
    pub fn bind(
        &self,
        family: Family,
        port: PortRequest,
    ) -> Result<(UdpSocket, RelayBound), BindError> {
        let (ip, adv) = match family {
            Family::V4 => (self.bind_v4, self.adv_v4),
            Family::V6 => (self.bind_v6, self.adv_v6),
        };
        let (Some(ip), Some(adv)) = (ip, adv) else {
            return Err(BindError::NoPort);
        };
        let mut rng = rand::thread_rng();
        let mut res = self.reservations.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        res.retain(|_, (_, _, t)| now.saturating_duration_since(*t) < RESERVATION_TTL);
        match port {
            PortRequest::Reserved(token) => {
                let (sock, _, _) = res.remove(&token).ok_or(BindError::BadReservation)?;
                let port = sock.local_addr().map_err(|_| BindError::NoPort)?.port();
                Ok((
                    sock,
                    RelayBound {
                        addr: SocketAddr::new(adv, port),
                        reservation: None,
                    },
                ))
            }
            PortRequest::Any => {
                for _ in 0..ATTEMPTS {
                    let p = rng.gen_range(self.min..=self.max);
                    if let Some(s) = Self::try_bind(ip, p) {
                        return Ok((
                            s,
                            RelayBound {
                                addr: SocketAddr::new(adv, p),
                                reservation: None,
                            },
                        ));
                    }
                }
                Err(BindError::NoPort)
            }
            PortRequest::Even { reserve_next } => {
                for _ in 0..ATTEMPTS {
                    let p = rng.gen_range(self.min..self.max) & !1;
                    if p < self.min {
                        continue;
                    }
                    let Some(s) = Self::try_bind(ip, p) else {
                        continue;
                    };
                    if !reserve_next {
                        return Ok((
                            s,
                            RelayBound {
                                addr: SocketAddr::new(adv, p),
                                reservation: None,
                            },
                        ));
                    }
                    let Some(next) = Self::try_bind(ip, p + 1) else {
                        continue;
                    };
                    let token: [u8; 8] = rng.gen();
                    res.insert(token, (next, SocketAddr::new(adv, p + 1), now));
                    let bound = RelayBound {
                        addr: SocketAddr::new(adv, p),
                        reservation: Some(token),
                    };
                    return Ok((s, bound));
                }
                Err(BindError::NoPort)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_port_reservation_pair() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let ports = RelayPorts::new(Some(lo), None, None, None, 40000, 60000);
        let (_s, b) = ports
            .bind(Family::V4, PortRequest::Even { reserve_next: true })
            .unwrap();
        assert_eq!(b.addr.port() % 2, 0);
        let token = b.reservation.expect("token");
        let (_s2, b2) = ports
            .bind(Family::V4, PortRequest::Reserved(token))
            .unwrap();
        assert_eq!(b2.addr.port(), b.addr.port() + 1);
        assert_eq!(
            ports
                .bind(Family::V4, PortRequest::Reserved(token))
                .unwrap_err(),
            BindError::BadReservation
        );
        assert_eq!(
            ports.bind(Family::V6, PortRequest::Any).unwrap_err(),
            BindError::NoPort
        );
    }
}
