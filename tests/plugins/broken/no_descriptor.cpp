// Fixture: a shared library that is not a couplet plugin (no descriptor symbol).
extern "C" __attribute__((visibility("default"))) int not_a_plugin() { return 42; }
