//! The Nexmark event model, computed per event without allocating.
//!
//! Events are numbered from 0; of every 50, one is a person, three are auctions and 46 are
//! bids (Nexmark's 1:3:46). Event `n` happens at `start + n / rate`. Every value of an event
//! is a function of its number alone (a SplitMix64 stream seeded by it), so the three tables,
//! generated separately, agree: a bid names auctions and people that the other tables hold
//! (or, as in Nexmark, that come soon after: a small lead). The model follows the Nexmark
//! benchmark's generator: hot auctions (half the bids go to the latest hundredth auction),
//! hot bidders (three bids in four come from the latest hundredth person), hot channels (half
//! the bids come from four named channels), log-uniform prices from $1 to $1,000,000 (in cents),
//! auctions open for a time that spans about a hundred auctions' worth of events, and an
//! `extra` text that pads each event to its average size. Texts are slices of one table of
//! random letters made once, so an event costs a few random numbers and copies.

/// Of every 50 events, this many are people; then auctions; the rest bids.
const PEOPLE: u64 = 1;
const AUCTIONS: u64 = 3;
const PER_EPOCH: u64 = 50;
/// Ids start here (Nexmark's first person and auction ids).
const FIRST_ID: i64 = 1000;
/// One auction (person) in this many is hot.
const HOT_RATIO: i64 = 100;
/// Auctions still open, and how far past the latest id a random pick may go.
const IN_FLIGHT_AUCTIONS: i64 = 100;
const ID_LEAD: i64 = 10;
/// People who still bid.
const ACTIVE_PEOPLE: i64 = 1000;
/// Named ("hot") channels, and the number of others.
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const CHANNELS: usize = 10_000;
/// Average sizes in bytes that `extra` pads each kind of event to.
const BID_BYTES: usize = 100;
const AUCTION_BYTES: usize = 500;
const PERSON_BYTES: usize = 200;
/// Size of the table of random letters texts are cut from.
const LETTERS: usize = 1 << 20;

const FIRST_NAMES: [&str; 11] = [
    "peter", "paul", "luke", "john", "saul", "vicky", "kate", "julie", "sarah", "deiter", "walter",
];
const LAST_NAMES: [&str; 9] = [
    "shultz", "abrams", "spencer", "white", "bartels", "walton", "smith", "jones", "noris",
];
const CITIES: [&str; 10] = [
    "phoenix",
    "los angeles",
    "san francisco",
    "boise",
    "portland",
    "bend",
    "redmond",
    "seattle",
    "kent",
    "cheyenne",
];
const STATES: [&str; 6] = ["az", "ca", "id", "or", "wa", "wy"];

/// A stream of pseudo-random numbers (SplitMix64).
struct Draw(u64);

impl Draw {
    fn new(event: u64) -> Self {
        Draw(event.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() >> 32) * n.max(1)) >> 32
    }

    /// A number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A bid, an auction or a person; texts borrowed from the model.
pub(crate) enum Row<'a> {
    /// A bid.
    Bid {
        auction: i64,
        bidder: i64,
        price: i64,
        channel: &'a str,
        url: &'a str,
        date_time: i64,
        extra: &'a str,
    },
    /// An auction.
    Auction {
        id: i64,
        item_name: &'a str,
        description: &'a str,
        initial_bid: i64,
        reserve: i64,
        date_time: i64,
        expires: i64,
        seller: i64,
        category: i64,
        extra: &'a str,
    },
    /// A person.
    Person {
        id: i64,
        name: String,
        email_address: String,
        credit_card: String,
        city: &'static str,
        state: &'static str,
        date_time: i64,
        extra: &'a str,
    },
}

/// Which events a table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bid,
    Auction,
    Person,
}

/// The event model: start time, rate and the texts events are cut from.
pub(crate) struct Model {
    start_ms: i64,
    rate: u64,
    /// Random lowercase letters (ASCII, so any byte range is a `str`).
    letters: String,
    channels: Vec<String>,
    urls: Vec<String>,
    hot_urls: Vec<String>,
}

impl Model {
    /// Events from `start_ms` (epoch ms) at `rate` events per second of event time.
    pub(crate) fn new(start_ms: i64, rate: u64) -> Self {
        let mut draw = Draw::new(u64::MAX);
        let letters: String = (0..LETTERS)
            .map(|_| (b'a' + draw.below(26) as u8) as char)
            .collect();
        let word = |d: &mut Draw| -> String {
            let len = 3 + d.below(3) as usize;
            (0..len)
                .map(|_| {
                    if d.below(13) == 0 {
                        '_'
                    } else {
                        (b'a' + d.below(26) as u8) as char
                    }
                })
                .collect()
        };
        let url = |d: &mut Draw| {
            format!(
                "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
                word(d),
                word(d),
                word(d)
            )
        };
        let mut channels = Vec::with_capacity(CHANNELS);
        let mut urls = Vec::with_capacity(CHANNELS);
        for i in 0..CHANNELS {
            channels.push(format!("channel-{i}"));
            let base = url(&mut draw);
            // Half the urls name their channel (Nexmark q21 extracts it).
            urls.push(if draw.below(2) == 0 {
                base
            } else {
                format!("{base}&channel_id={}", draw.below(1 << 31))
            });
        }
        let hot_urls = HOT_CHANNELS.iter().map(|_| url(&mut draw)).collect();
        Model {
            start_ms,
            rate: rate.max(1),
            letters,
            channels,
            urls,
            hot_urls,
        }
    }

    /// The event number of the `k`-th (from 0) row of a table.
    fn event_number(kind: Kind, k: u64) -> u64 {
        let (per, first) = match kind {
            Kind::Person => (PEOPLE, 0),
            Kind::Auction => (AUCTIONS, PEOPLE),
            Kind::Bid => (PER_EPOCH - PEOPLE - AUCTIONS, PEOPLE + AUCTIONS),
        };
        (k / per) * PER_EPOCH + first + k % per
    }

    fn time(&self, n: u64) -> i64 {
        let ms = u128::from(n) * 1000 / u128::from(self.rate);
        self.start_ms
            .saturating_add(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// The latest person (0-based) at event `n`.
    fn last_person(n: u64) -> i64 {
        (n / PER_EPOCH) as i64
    }

    /// The latest auction (0-based) at event `n`.
    fn last_auction(n: u64) -> i64 {
        let (epoch, offset) = ((n / PER_EPOCH) as i64, n % PER_EPOCH);
        let a = AUCTIONS as i64;
        if offset < PEOPLE {
            epoch * a - 1
        } else if offset < PEOPLE + AUCTIONS {
            epoch * a + (offset - PEOPLE) as i64
        } else {
            epoch * a + a - 1
        }
        .max(0)
    }

    /// A recent auction (0-based) at event `n`.
    fn some_auction(n: u64, d: &mut Draw) -> i64 {
        let last = Self::last_auction(n);
        let min = (last - IN_FLIGHT_AUCTIONS).max(0);
        min + d.below((last - min + ID_LEAD + 1) as u64) as i64
    }

    /// A recent person (0-based) at event `n`.
    fn some_person(n: u64, d: &mut Draw) -> i64 {
        let people = Self::last_person(n) + 1;
        let active = people.min(ACTIVE_PEOPLE);
        people - active + d.below((active + ID_LEAD) as u64) as i64
    }

    /// A price in cents, log-uniform from 100 to 100,000,000.
    fn price(d: &mut Draw) -> i64 {
        (10f64.powf(d.unit() * 6.0) * 100.0).round() as i64
    }

    /// `len` random letters.
    fn letters(&self, d: &mut Draw, len: usize) -> &str {
        let at = d.below((LETTERS - len) as u64) as usize;
        self.letters.get(at..at + len).unwrap_or_default()
    }

    /// Padding that brings an event of `used` bytes to `average` bytes on average.
    fn extra(&self, d: &mut Draw, used: usize, average: usize) -> &str {
        let want = average.saturating_sub(used);
        let delta = (want + 2) / 5;
        let len = want - delta + d.below((2 * delta).max(1) as u64) as usize;
        self.letters(d, len)
    }

    /// Row `k` (from 0) of table `kind`.
    pub(crate) fn row(&self, kind: Kind, k: u64) -> Row<'_> {
        let n = Self::event_number(kind, k);
        let d = &mut Draw::new(n);
        let date_time = self.time(n);
        match kind {
            Kind::Bid => {
                let auction = if d.below(2) > 0 {
                    (Self::last_auction(n) / HOT_RATIO) * HOT_RATIO
                } else {
                    Self::some_auction(n, d)
                };
                let bidder = if d.below(4) > 0 {
                    (Self::last_person(n) / HOT_RATIO) * HOT_RATIO + 1
                } else {
                    Self::some_person(n, d)
                };
                let price = Self::price(d);
                let (channel, url) = if d.below(2) > 0 {
                    let i = d.below(HOT_CHANNELS.len() as u64) as usize;
                    (HOT_CHANNELS[i], self.hot_urls[i].as_str())
                } else {
                    let i = d.below(CHANNELS as u64) as usize;
                    (self.channels[i].as_str(), self.urls[i].as_str())
                };
                Row::Bid {
                    auction: auction + FIRST_ID,
                    bidder: bidder + FIRST_ID,
                    price,
                    channel,
                    url,
                    date_time,
                    extra: self.extra(d, 32, BID_BYTES),
                }
            }
            Kind::Auction => {
                let id = Self::last_auction(n);
                let initial_bid = Self::price(d);
                let reserve = initial_bid + Self::price(d);
                // Open while about a hundred more auctions start, give or take half.
                let span_events =
                    (IN_FLIGHT_AUCTIONS as u64 * PER_EPOCH / AUCTIONS) as f64 * (0.5 + d.unit());
                let open_ms = (span_events * 1000.0 / self.rate as f64).round() as i64;
                let seller = if d.below(4) > 0 {
                    (Self::last_person(n) / HOT_RATIO) * HOT_RATIO
                } else {
                    Self::some_person(n, d)
                };
                Row::Auction {
                    id: id + FIRST_ID,
                    item_name: self.letters(d, 20),
                    description: self.letters(d, 100),
                    initial_bid,
                    reserve,
                    date_time,
                    expires: date_time.saturating_add(open_ms.max(1)),
                    seller: seller + FIRST_ID,
                    category: 10 + d.below(5) as i64,
                    extra: self.extra(d, 64, AUCTION_BYTES),
                }
            }
            Kind::Person => {
                let first = FIRST_NAMES[d.below(FIRST_NAMES.len() as u64) as usize];
                let last = LAST_NAMES[d.below(LAST_NAMES.len() as u64) as usize];
                let email = format!("{}@{}.com", self.letters(d, 7), self.letters(d, 5));
                let card = format!(
                    "{:04} {:04} {:04} {:04}",
                    d.below(10_000),
                    d.below(10_000),
                    d.below(10_000),
                    d.below(10_000)
                );
                Row::Person {
                    id: Self::last_person(n) + FIRST_ID,
                    name: format!("{first} {last}"),
                    email_address: email,
                    credit_card: card,
                    city: CITIES[d.below(CITIES.len() as u64) as usize],
                    state: STATES[d.below(STATES.len() as u64) as usize],
                    date_time,
                    extra: self.extra(d, 64, PERSON_BYTES),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_interleave_one_auction_in_three_and_one_person_in_fifty() {
        assert_eq!(Model::event_number(Kind::Person, 0), 0);
        assert_eq!(Model::event_number(Kind::Person, 2), 100);
        assert_eq!(Model::event_number(Kind::Auction, 0), 1);
        assert_eq!(Model::event_number(Kind::Auction, 4), 52);
        assert_eq!(Model::event_number(Kind::Bid, 0), 4);
        assert_eq!(Model::event_number(Kind::Bid, 46), 54);
        // The k-th auction's id is 1000 + k; a person's, 1000 + k.
        let m = Model::new(0, 100);
        for k in [0, 1, 2, 3, 299] {
            let Row::Auction { id, .. } = m.row(Kind::Auction, k) else {
                panic!("an auction");
            };
            assert_eq!(id, FIRST_ID + k as i64);
        }
        let Row::Person { id, .. } = m.row(Kind::Person, 7) else {
            panic!("a person");
        };
        assert_eq!(id, FIRST_ID + 7);
    }

    #[test]
    fn a_bid_names_an_auction_that_exists_by_then_or_soon_after_and_is_deterministic() {
        let m = Model::new(1_700_000_000_000, 100);
        for k in 0..5000u64 {
            let n = Model::event_number(Kind::Bid, k);
            let Row::Bid {
                auction,
                date_time,
                price,
                extra,
                ..
            } = m.row(Kind::Bid, k)
            else {
                panic!("a bid");
            };
            assert!(auction - FIRST_ID <= Model::last_auction(n) + ID_LEAD);
            assert_eq!(date_time, 1_700_000_000_000 + (n as i64 * 10));
            assert!((100..=100_000_000).contains(&price));
            assert!((40..=96).contains(&extra.len()), "{}", extra.len());
        }
        let again = Model::new(1_700_000_000_000, 100);
        let (Row::Bid { url: a, .. }, Row::Bid { url: b, .. }) =
            (m.row(Kind::Bid, 12), again.row(Kind::Bid, 12))
        else {
            panic!("bids");
        };
        assert_eq!(a, b);
    }
}
