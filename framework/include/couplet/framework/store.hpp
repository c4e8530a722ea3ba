// couplet framework — the artifact store: artifacts to and from HDF5, tables to CSV and Markdown.
//
// Every write is atomic: the content goes to "<file>.tmp-<pid>-<n>" in the same directory, is flushed
// to disk, then renamed onto <file>. A reader therefore sees either the previous file or the complete
// new one, never a half-written artifact. On failure the temp file is removed and a std::runtime_error
// naming the file is thrown. Missing parent directories are created.
//
// HDF5 layout (opens as it is with h5py and with xarray.open_dataset(path, engine="h5netcdf")):
//
//   every kind   a 512-byte HDF5 user block holding a checksum of the rest of the file, which
//                read_artifact verifies before HDF5 parses anything (HDF5 1.10 can crash on damaged
//                files); root attribute couplet_artifact = "dataset" | "table" | "model"; Artifact::attrs
//                as root attributes. All attributes are scalar variable-length UTF-8 strings.
//   Dataset      netCDF-4 style. One HDF5 dataset per variable (float32, float64, or variable-length
//                UTF-8 strings), compressed (shuffle + deflate) when larger than 1 MiB. Each dimension is
//                a dimension scale: the coordinate variable of the same name when there is one, else a
//                netCDF "dimension without variable" (an empty float32 dataset). A variable named like a
//                dimension but not its coordinate is stored as "_nc4_non_coord_<name>", as netCDF does.
//                Root attributes couplet_dims and couplet_variables (comma-separated) keep declaration order.
//   Table        like a Dataset with one dimension "row"; each column a 1-D variable (float64 or strings)
//                with attributes "units" and "long_name" (Column::doc) when non-empty; column order
//                in the root attribute couplet_columns.
//   Model        root attributes model_type and model_config; each of Model::arrays is a dataset
//                /arrays/<key> with attribute couplet_dims (comma-separated; no dimension scales) and,
//                when the variable's own name differs from its key, couplet_name.
//
// Names of dimensions, variables, columns and arrays must be non-empty and free of ',', '/' and NUL.
// Attribute names starting with "couplet_", and those HDF5 dimension scales and netCDF use (CLASS, NAME,
// DIMENSION_LIST, REFERENCE_LIST, _Netcdf4Dimid, ...) are reserved; so are model_type and model_config on
// a Model. Writing an artifact that breaks these rules throws.
//
// Streamed Dataset   written by ChunkedDatasetFile in row blocks along its first dimension: the Dataset
//                layout above plus the root attribute couplet_chunk_dim; its streamed variables are
//                chunked by whole rows (the same rows for each, about 1 MiB for the widest) and always
//                compressed. read_artifact reads it whole; read_rows reads a block of rows.
//
// The functions are safe to call from several threads; the store serialises its HDF5 work.
#pragma once

#include <couplet/artifact.hpp>

#include <filesystem>
#include <memory>
#include <string>

namespace couplet::store {

/// Writes a Dataset, Table or Model to an HDF5 file, atomically.
void write_artifact(const Artifact& a, const std::filesystem::path& file);

/// Reads back any artifact written by write_artifact, exactly (values bitwise, order, attributes).
/// Throws std::runtime_error naming the file and what was expected when the file is missing, is not
/// HDF5, is damaged or was changed after it was written (checksum), or does not have the layout above.
std::shared_ptr<const Artifact> read_artifact(const std::filesystem::path& file);

/// Checks an artifact file's checksum (reads it once) and throws like read_artifact when it fails.
/// chunking() and read_rows() do not, so that reading a large file block by block stays linear: a
/// caller verifies a file once before them.
void verify_artifact(const std::filesystem::path& file);

/// The artifact's global attributes alone (Artifact::attrs), without reading any variable: cheap for a
/// streamed multi-gigabyte Dataset. Throws naming the file.
Attributes read_global_attributes(const std::filesystem::path& file);

/// Writes a Dataset whose streamed variables never need to be in memory whole (see ChunkedLayout).
///
/// Row blocks may come in any order and the file's bytes do not depend on it: a group of chunk rows
/// goes to HDF5 once every row before it has, in order; a block that arrives ahead of a gap waits in a
/// sparse side file ("<temp>.rows"), so memory holds at most the block being written. The file appears
/// atomically at close(), as with write_artifact; a ChunkedDatasetFile destroyed before close() removes
/// its temp files. Errors name the file and the rows. Thread-safe.
class ChunkedDatasetFile {
 public:
  /// Checks the layout, then creates the temp file with the header and the empty streamed variables.
  ChunkedDatasetFile(const std::filesystem::path& file, const ChunkedLayout& layout);
  ~ChunkedDatasetFile();
  ChunkedDatasetFile(const ChunkedDatasetFile&) = delete;
  ChunkedDatasetFile& operator=(const ChunkedDatasetFile&) = delete;

  /// Rows [begin, begin + n) of every streamed variable (ChunkedWriter::write's contract).
  void write_rows(std::size_t begin, const Dataset& rows);
  /// Throws naming the missing rows unless each was written; then seals and renames onto the file.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The chunk dimension and length of a stored Dataset (dim empty when it was written whole).
Chunking chunking(const std::filesystem::path& file);

/// Rows [begin, begin + count) of a file written by ChunkedDatasetFile: variables whose first
/// dimension is the chunk dimension are sliced, the others read whole. Throws naming the file and rows.
std::shared_ptr<const Dataset> read_rows(const std::filesystem::path& file, std::size_t begin, std::size_t count);

/// The header of a file written by ChunkedDatasetFile: every dimension and every variable that was not
/// streamed, whole (coordinates along the chunk dimension included), without reading a streamed row.
std::shared_ptr<const Dataset> read_header(const std::filesystem::path& file);

/// CSV with a header row of column names; numbers as %.10g, NaN as an empty field; fields quoted per
/// RFC 4180 where needed. Atomic.
void write_table_csv(const Table& t, const std::filesystem::path& file);

/// Any text file (provenance, resolved workflows, docs), atomically and durably, like every artifact.
void write_text_atomic(const std::filesystem::path& file, const std::string& text);

/// The table as Markdown (table_to_markdown), atomically.
void write_table_markdown(const Table& t, const std::filesystem::path& file);

/// A GitHub pipe table with padded, aligned columns (numbers right-aligned, as %.4g, NaN as "—"), of at
/// most `max_rows` rows (the first ones). Empty for a table without columns.
std::string table_to_markdown(const Table& t, std::size_t max_rows = static_cast<std::size_t>(-1));

}  // namespace couplet::store
