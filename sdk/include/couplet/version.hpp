// couplet SDK — versions a plugin is checked against when it is loaded.
#pragma once

/// Framework release. Plugins must be built against the same major.minor (C++ types cross the boundary).
#define COUPLET_VERSION_MAJOR 0
#define COUPLET_VERSION_MINOR 1
#define COUPLET_VERSION_PATCH 0
#define COUPLET_VERSION_STRING "0.1.0"

/// Bumped whenever the descriptor layout or any SDK type that crosses the plugin boundary changes.
#define COUPLET_PLUGIN_ABI_VERSION 5
