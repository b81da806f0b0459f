// extension/include/execguard/core/normalize.hpp
//
// normalize_models(): the canonical, deduplicated model list of a job.
//
// Two entries are the same model when their canonical ids are equal. The
// result keeps first-seen order; each model's regions are the union, in
// first-seen order, of the regions of all its entries (the default regions
// standing in for an entry that names none). Conflicts are errors, never a
// silent pick: two entries of one model naming different providers fail.
#pragma once

#include "execguard/core/guard.hpp"

#include "execguard/core/canonical.hpp"
#include "execguard/core/json_tree.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace execguard::core {

struct Model {
    std::string id;    // canonical
    std::string name;  // first non-empty name, else the first spelling of the id
    std::optional<std::string> provider;
    std::vector<std::string> regions;            // canonical, first-seen order, no repeats
    bool name_given = false;                     // name came from a "name" member
    const std::string* provider_path = nullptr;  // the entry that set provider,
    std::size_t provider_index = 0;              // for a conflict's message
};

// One JSON array of model entries and the path used to name its elements
// in error messages ("models", "metadata.models").
struct ModelSource {
    std::string path;
    JsonNode entries;
};

struct NormalizedModels {
    std::vector<Model> models;
    std::size_t duplicates_removed = 0;  // entries merged into an earlier one
};

// Canonical region names of a default_regions argument.
std::vector<std::string> canonical_regions(const std::vector<std::string_view>& raw, const Where& path);

NormalizedModels normalize_models(const std::vector<ModelSource>& sources,
                                  const std::vector<std::string>& default_regions);

// [{id, name, provider, regions}] as normalize_models() returns it to SQL.
nlohmann::json models_to_json(const std::vector<Model>& models);

// The whole SQL-level function on JSON text: parses `models_json`, which
// must be an array, and returns the normalised array as JSON text.
std::string normalize_models_text(std::string_view models_json, const std::vector<std::string>& default_regions);

// The SQL-level function on a document in eg_json_node form (what the
// PostgreSQL adapter builds from a Jsonb): checks that it is an array.
NormalizedModels normalize_model_tree(JsonNode models, const std::vector<std::string_view>& default_regions);

}  // namespace execguard::core
