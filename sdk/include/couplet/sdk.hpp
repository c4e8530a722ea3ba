// couplet SDK — everything a plugin author includes.
#pragma once
#include <couplet/artifact.hpp>
#include <couplet/context.hpp>
#include <couplet/files.hpp>
#include <couplet/node.hpp>
#include <couplet/plugin.hpp>
#include <couplet/seed.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>
#include <couplet/version.hpp>
