//! The extract stage: a signed, paginated, rate-governed client of the MariBank API.
