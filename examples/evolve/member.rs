//! A library member as the first release of the code wrote it, and as it is now, three
//! releases later.

/// The first release, kept here to write the events it stored; an application keeps only
/// the current code.
pub mod release_1 {
    use es::prelude::*;

    /// A member, as the first release kept one.
    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct Member;

    #[aggregate]
    impl Member {
        /// Join the library.
        #[command]
        fn join(&self, name: String, city: String) -> MemberEvent {
            MemberEvent::Joined { name, city }
        }

        /// Borrow a book, for a fee.
        #[command]
        fn borrow(&self, isbn: String, fee: u64) -> MemberEvent {
            MemberEvent::Borrowed { isbn, fee }
        }

        /// Take a nickname.
        #[command]
        fn nickname(&self, nickname: String) -> MemberEvent {
            MemberEvent::Nicknamed { nickname }
        }

        /// The member joined.
        #[event]
        fn joined(&mut self, name: &str, city: &str) {
            let _ = (name, city);
        }

        /// A book was borrowed.
        #[event]
        fn borrowed(&mut self, isbn: &str, fee: u64) {
            let _ = (isbn, fee);
        }

        /// The member took a nickname.
        #[event]
        fn nicknamed(&mut self, nickname: &str) {
            let _ = nickname;
        }
    }
}

/// The current code (release 3).
pub mod current {
    use es::prelude::*;

    /// Where a member lives: release 2 stored one where release 1 stored a city.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Address {
        /// The city.
        pub city: String,
        /// The country, when known.
        pub country: Option<String>,
    }

    /// A member of the library.
    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Member {
        /// First name.
        pub first: String,
        /// Last name.
        pub last: String,
        /// Where the member lives.
        pub address: Option<Address>,
        /// The books borrowed.
        pub loans: Vec<String>,
        /// The fees charged, in cents.
        pub fees: u64,
    }

    #[aggregate]
    impl Member {
        /// Join the library.
        #[command]
        fn join(&self, first: String, last: String, address: Address) -> MemberEvent {
            MemberEvent::Joined {
                first,
                last,
                address,
            }
        }

        /// Borrow a book; the fee is charged beside it.
        #[command]
        fn borrow(&self, isbn: String, fee: u64) -> Vec<MemberEvent> {
            vec![
                MemberEvent::Borrowed { isbn },
                MemberEvent::FeeCharged { cents: fee },
            ]
        }

        /// The member joined. Version 3: the name in two.
        #[event(version = 3)]
        fn joined(&mut self, first: &str, last: &str, address: &Address) {
            (self.first, self.last) = (first.to_owned(), last.to_owned());
            self.address = Some(address.clone());
        }

        /// Version 2 (release 2) stored the name whole.
        #[upcast(from = "Joined", version = 2)]
        fn joined_v2(name: String, address: Address) -> MemberEvent {
            let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
            MemberEvent::Joined {
                first: first.to_owned(),
                last: last.to_owned(),
                address,
            }
        }

        /// Version 1 stored a city: read into an address, then on through version 2's
        /// upcast.
        #[upcast(from = "Joined", version = 1)]
        fn joined_v1(name: String, city: String) -> MemberEvent {
            Self::joined_v2(
                name,
                Address {
                    city,
                    country: None,
                },
            )
        }

        /// A book was borrowed. Version 2: its fee is an event of its own.
        #[event(version = 2)]
        fn borrowed(&mut self, isbn: &str) {
            self.loans.push(isbn.to_owned());
        }

        /// A fee was charged.
        #[event]
        fn fee_charged(&mut self, cents: u64) {
            self.fees += cents;
        }

        /// Version 1 held the fee: one event became two.
        #[upcast(from = "Borrowed", version = 1)]
        fn borrowed_v1(isbn: String, fee: u64) -> Vec<MemberEvent> {
            vec![
                MemberEvent::Borrowed { isbn },
                MemberEvent::FeeCharged { cents: fee },
            ]
        }

        /// Nicknames are gone: their events are dropped on read.
        #[upcast(from = "Nicknamed", version = 1, retired)]
        fn nicknamed_v1(nickname: String) -> Option<MemberEvent> {
            let _ = nickname;
            None
        }
    }
}
