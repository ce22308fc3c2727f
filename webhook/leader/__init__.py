"""The leader (the Lease holder): binds reservations, releases addresses, keeps Subnet status;
its decisions are pure."""
