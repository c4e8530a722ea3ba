// The test runner. LibTorch-using tests live in their plugins' own test executables, so glog's CHECK
// never meets doctest's here (see TOOLCHAIN.md).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
