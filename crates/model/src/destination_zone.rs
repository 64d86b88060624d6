//! The callee's time zone for `calling_hours.destination_local` (docs/calling_hours.md): from the
//! country calling code of an E.164 number, for the countries whose whole territory lies in a
//! single IANA time zone. Countries spanning several zones (`+1` North America, `+7` Russia
//! and Kazakhstan, `+55` Brazil, `+61` Australia, `+52` Mexico, `+62` Indonesia, ...) and those
//! the tz database splits even where the clock agrees (`+86` China, `+60` Malaysia, `+54`
//! Argentina) or where part of the territory keeps another time (`+34` Spain with the Canary
//! Islands, `+351` Portugal with the Azores) are left out: for them the campaign's own
//! `time_zone` applies, as for any number that is not E.164 (`sip`, extensions, ...).
//!
//! Country calling codes form a prefix code (no code is the start of another), so the first of
//! the number's 1-, 2- and 3-digit prefixes found in the table is its country. The table is
//! written from the public ITU-T E.164 code list and the tz database's zone list.

use std::str::FromStr;

use chrono_tz::Tz;

use super::Address;

/// Country calling code → the country's single IANA zone.
const SINGLE_ZONE_COUNTRIES: &[(&str, &str)] = &[
    ("20", "Africa/Cairo"),
    ("27", "Africa/Johannesburg"),
    ("30", "Europe/Athens"),
    ("31", "Europe/Amsterdam"),
    ("32", "Europe/Brussels"),
    ("33", "Europe/Paris"),
    ("36", "Europe/Budapest"),
    ("39", "Europe/Rome"),
    ("40", "Europe/Bucharest"),
    ("41", "Europe/Zurich"),
    ("43", "Europe/Vienna"),
    ("44", "Europe/London"),
    ("45", "Europe/Copenhagen"),
    ("46", "Europe/Stockholm"),
    ("47", "Europe/Oslo"),
    ("48", "Europe/Warsaw"),
    ("49", "Europe/Berlin"),
    ("51", "America/Lima"),
    ("53", "America/Havana"),
    ("57", "America/Bogota"),
    ("58", "America/Caracas"),
    ("63", "Asia/Manila"),
    ("65", "Asia/Singapore"),
    ("66", "Asia/Bangkok"),
    ("81", "Asia/Tokyo"),
    ("82", "Asia/Seoul"),
    ("84", "Asia/Ho_Chi_Minh"),
    ("90", "Europe/Istanbul"),
    ("91", "Asia/Kolkata"),
    ("92", "Asia/Karachi"),
    ("94", "Asia/Colombo"),
    ("95", "Asia/Yangon"),
    ("98", "Asia/Tehran"),
    ("212", "Africa/Casablanca"),
    ("213", "Africa/Algiers"),
    ("216", "Africa/Tunis"),
    ("218", "Africa/Tripoli"),
    ("221", "Africa/Dakar"),
    ("233", "Africa/Accra"),
    ("234", "Africa/Lagos"),
    ("254", "Africa/Nairobi"),
    ("255", "Africa/Dar_es_Salaam"),
    ("256", "Africa/Kampala"),
    ("352", "Europe/Luxembourg"),
    ("353", "Europe/Dublin"),
    ("354", "Atlantic/Reykjavik"),
    ("356", "Europe/Malta"),
    ("358", "Europe/Helsinki"),
    ("359", "Europe/Sofia"),
    ("370", "Europe/Vilnius"),
    ("371", "Europe/Riga"),
    ("372", "Europe/Tallinn"),
    ("385", "Europe/Zagreb"),
    ("386", "Europe/Ljubljana"),
    ("420", "Europe/Prague"),
    ("421", "Europe/Bratislava"),
    ("852", "Asia/Hong_Kong"),
    ("853", "Asia/Macau"),
    ("880", "Asia/Dhaka"),
    ("886", "Asia/Taipei"),
    ("961", "Asia/Beirut"),
    ("962", "Asia/Amman"),
    ("965", "Asia/Kuwait"),
    ("966", "Asia/Riyadh"),
    ("968", "Asia/Muscat"),
    ("971", "Asia/Dubai"),
    ("972", "Asia/Jerusalem"),
    ("973", "Asia/Bahrain"),
    ("974", "Asia/Qatar"),
    ("977", "Asia/Kathmandu"),
];

/// The zone of an E.164 number (`+` and 8 to 15 digits) whose country has a single zone.
pub fn e164_zone(number: &str) -> Option<Tz> {
    let digits = number.strip_prefix('+')?;
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    (1..=3).find_map(|n| {
        let code = &digits[..n];
        SINGLE_ZONE_COUNTRIES
            .iter()
            .find(|(c, _)| *c == code)
            .and_then(|(_, zone)| Tz::from_str(zone).ok())
    })
}

/// The callee's zone for a destination: a `tel` address (or one without a type) holding an
/// E.164 number of a single-zone country; `None` otherwise.
pub fn destination_zone(destination: &Address) -> Option<Tz> {
    if !(destination.kind.is_empty() || destination.kind == "tel") {
        return None;
    }
    e164_zone(destination.target.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_zone_in_the_table_exists_and_codes_are_a_prefix_code() {
        for (code, zone) in SINGLE_ZONE_COUNTRIES {
            assert!(Tz::from_str(zone).is_ok(), "{zone}");
            assert!(code.bytes().all(|b| b.is_ascii_digit()) && code.len() <= 3);
            for (other, _) in SINGLE_ZONE_COUNTRIES {
                assert!(
                    other == code || !other.starts_with(code),
                    "{code} is a prefix of {other}"
                );
            }
        }
    }

    #[test]
    fn single_zone_countries_map_to_their_zone() {
        for (number, zone) in [
            ("+821012345678", "Asia/Seoul"),
            ("+81312345678", "Asia/Tokyo"),
            ("+442071234567", "Europe/London"),
            ("+4930123456", "Europe/Berlin"),
            ("+33142685300", "Europe/Paris"),
            ("+97143000000", "Asia/Dubai"),
            ("+35312345678", "Europe/Dublin"),
            ("+27211234567", "Africa/Johannesburg"),
        ] {
            assert_eq!(e164_zone(number), Tz::from_str(zone).ok(), "{number}");
        }
    }

    #[test]
    fn multi_zone_countries_and_non_e164_numbers_have_no_zone() {
        for number in [
            "+12125551234",   // +1: North America
            "+74951234567",   // +7: Russia
            "+5511912345678", // +55: Brazil
            "+61212345678",   // +61: Australia
            "+525512345678",  // +52: Mexico
            "+6221123456",    // +62: Indonesia
            "+861012345678",  // +86: China (two tz database zones)
            "+34922123456",   // +34: Spain (Canary Islands)
            "+351212345678",  // +351: Portugal (Azores)
            "821012345678",   // no +
            "+82",            // too short
            "+82-10-1234",    // not digits
            "+8210123456789012",
            "",
        ] {
            assert_eq!(e164_zone(number), None, "{number}");
        }
    }

    #[test]
    fn only_tel_addresses_are_looked_up() {
        let mut a = Address::tel("+821012345678");
        assert_eq!(destination_zone(&a), Some(Tz::Asia__Seoul));
        a.kind = "sip".into();
        assert_eq!(destination_zone(&a), None);
        a.kind = String::new();
        assert_eq!(destination_zone(&a), Some(Tz::Asia__Seoul));
    }
}
