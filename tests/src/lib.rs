//! Test harness: simulated pods (netns + veth + cgroup), moto, fake API server.
