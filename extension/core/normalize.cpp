// extension/core/normalize.cpp
//
// Model-list normalisation (see normalize.hpp). Plain C++, no PostgreSQL
// headers; fuzzed by test/fuzz.
#include "execguard/core/normalize.hpp"

#include "execguard/core/canonical.hpp"

#include <unordered_map>

namespace execguard::core {

namespace {

using nlohmann::json;

void add_unique(std::vector<std::string>& into, const std::string& value) {
    for (const std::string& existing : into) {
        if (existing == value) {
            return;
        }
    }
    into.push_back(value);
}

// Optional string member: absent and JSON null both mean "not given".
std::optional<std::string> optional_text(const json& entry, const char* key, const std::string& where) {
    auto it = entry.find(key);
    if (it == entry.end() || it->is_null()) {
        return std::nullopt;
    }
    if (!it->is_string()) {
        fail(where + "." + key + " must be a string");
    }
    std::string text = checked_text(it->get_ref<const std::string&>(), where + "." + key);
    if (text.empty()) {
        return std::nullopt;
    }
    return text;
}

std::string shown(const std::string& text) {
    // Enough of the value to recognise it, never a megabyte of it.
    constexpr std::size_t kShown = 64;
    if (text.size() <= kShown) {
        return "\"" + text + "\"";
    }
    return "\"" + text.substr(0, kShown) + "...\"";
}

// One entry, parsed and checked, before merging.
struct Entry {
    std::string id;
    std::string spelling;  // trimmed, original case
    std::optional<std::string> name;
    std::optional<std::string> provider;
    std::vector<std::string> regions;
};

Entry parse_entry(const json& element, const std::string& where) {
    Entry entry;
    if (element.is_string()) {
        const std::string& raw = element.get_ref<const std::string&>();
        entry.id = canonical_model_or_region(raw, where);
        entry.spelling = std::string(trim_ascii(raw));
        return entry;
    }
    if (!element.is_object()) {
        fail(where + " must be a string or an object");
    }
    for (auto it = element.begin(); it != element.end(); ++it) {
        const std::string& key = it.key();
        if (key != "id" && key != "name" && key != "provider" && key != "regions") {
            fail(where + " has unknown key " + shown(key) + " (expected id, name, provider, regions)");
        }
    }
    auto id = element.find("id");
    if (id == element.end() || id->is_null()) {
        fail(where + ".id is required");
    }
    if (!id->is_string()) {
        fail(where + ".id must be a string");
    }
    entry.id = canonical_model_or_region(id->get_ref<const std::string&>(), where + ".id");
    entry.spelling = std::string(trim_ascii(id->get_ref<const std::string&>()));
    entry.name = optional_text(element, "name", where);
    entry.provider = optional_text(element, "provider", where);
    auto regions = element.find("regions");
    if (regions != element.end() && !regions->is_null()) {
        if (!regions->is_array()) {
            fail(where + ".regions must be an array of strings");
        }
        std::size_t index = 0;
        for (const json& region : *regions) {
            const std::string region_where = where + ".regions[" + std::to_string(index++) + "]";
            if (!region.is_string()) {
                fail(region_where + " must be a string");
            }
            add_unique(entry.regions, canonical_model_or_region(region.get_ref<const std::string&>(), region_where));
        }
    }
    return entry;
}

}  // namespace

std::vector<std::string> canonical_regions(const std::vector<std::string>& raw, const std::string& path) {
    std::vector<std::string> regions;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        add_unique(regions, canonical_model_or_region(raw[i], path + "[" + std::to_string(i) + "]"));
    }
    return regions;
}

NormalizedModels normalize_models(const std::vector<ModelSource>& sources,
                                  const std::vector<std::string>& default_regions) {
    std::size_t total = 0;
    for (const ModelSource& source : sources) {
        if (!source.entries->is_array()) {
            fail(source.path + " must be an array");
        }
        total += source.entries->size();
    }
    if (total > kMaxModelEntries) {
        fail_limit("too many model entries: " + std::to_string(total) + " (at most " +
                   std::to_string(kMaxModelEntries) + ")");
    }

    NormalizedModels out;
    out.models.reserve(total);
    std::unordered_map<std::string, std::size_t> index_by_id;
    index_by_id.reserve(total);
    for (const ModelSource& source : sources) {
        std::size_t position = 0;
        for (const json& element : *source.entries) {
            const std::string where = source.path + "[" + std::to_string(position++) + "]";
            Entry entry = parse_entry(element, where);
            const std::vector<std::string>& regions = entry.regions.empty() ? default_regions : entry.regions;

            auto [it, inserted] = index_by_id.emplace(entry.id, out.models.size());
            if (inserted) {
                Model model;
                model.id = std::move(entry.id);
                model.name_given = entry.name.has_value();
                model.name = entry.name ? std::move(*entry.name) : std::move(entry.spelling);
                model.provider = std::move(entry.provider);
                if (model.provider) {
                    model.provider_where = where;
                }
                model.regions = regions;
                out.models.push_back(std::move(model));
                continue;
            }

            ++out.duplicates_removed;
            Model& model = out.models[it->second];
            if (entry.provider) {
                if (!model.provider) {
                    model.provider = std::move(entry.provider);
                    model.provider_where = where;
                } else if (*model.provider != *entry.provider) {
                    fail(where + ".provider " + shown(*entry.provider) + " conflicts with " + model.provider_where +
                         ".provider " + shown(*model.provider) + " for model " + shown(model.id));
                }
            }
            // "The first non-empty name given": until an entry gives one, the
            // first spelling of the id stands in for it.
            if (entry.name && !model.name_given) {
                model.name = std::move(*entry.name);
                model.name_given = true;
            }
            for (const std::string& region : regions) {
                add_unique(model.regions, region);
            }
        }
    }
    return out;
}

json models_to_json(const std::vector<Model>& models) {
    json array = json::array();
    for (const Model& model : models) {
        json object = json::object();
        object["id"] = model.id;
        object["name"] = model.name;
        object["provider"] = model.provider ? json(*model.provider) : json(nullptr);
        object["regions"] = model.regions;
        array.push_back(std::move(object));
    }
    return array;
}

std::string normalize_models_text(std::string_view models_json, const std::vector<std::string>& default_regions) {
    json models = json::parse(models_json.begin(), models_json.end(), nullptr, /*allow_exceptions=*/false);
    if (models.is_discarded()) {
        fail("models is not valid JSON");
    }
    if (!models.is_array()) {
        fail("models must be a JSON array");
    }
    const std::vector<std::string> defaults = canonical_regions(default_regions, "default_regions");
    NormalizedModels normalized = normalize_models({ModelSource{"models", &models}}, defaults);
    return models_to_json(normalized.models).dump();
}

}  // namespace execguard::core
