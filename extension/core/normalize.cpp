// extension/core/normalize.cpp
//
// Model-list normalisation (see normalize.hpp). Plain C++, no PostgreSQL
// headers; fuzzed by test/fuzz.
#include "execguard/core/normalize.hpp"

#include "execguard/core/canonical.hpp"
#include "execguard/core/interrupt.hpp"

#include <unordered_map>
#include <unordered_set>

namespace execguard::core {

namespace {

using nlohmann::json;

// A list without repeats, in first-seen order. The set makes each addition
// O(1): a linear search made 120,000 distinct regions take 15 s.
struct UniqueList {
    std::vector<std::string>& items;
    std::unordered_set<std::string> seen;

    explicit UniqueList(std::vector<std::string>& into) : items(into), seen(into.begin(), into.end()) {}
    void add(const std::string& value) {
        if (seen.insert(value).second) {
            items.push_back(value);
        }
    }
};

std::string shown(std::string_view text) { return "\"" + excerpt(text) + "\""; }

// Optional string member: absent and JSON null both mean "not given".
std::optional<std::string> optional_text(JsonNode entry, const char* key, const Where& where) {
    JsonNode value = entry;
    if (!entry.find(key, value)) {
        return std::nullopt;
    }
    const Where member = where.member(key);
    if (!value.is_string()) {
        fail(member.str() + " must be a string");
    }
    std::string text = checked_text(value.text(), member);
    if (text.empty()) {
        return std::nullopt;
    }
    return text;
}

// One entry, parsed and checked, before merging.
struct Entry {
    std::string id;
    std::string_view spelling;  // trimmed, original case
    std::optional<std::string> name;
    std::optional<std::string> provider;
    std::vector<std::string> regions;
};

void parse_entry(JsonNode element, const Where& where, Entry& entry) {
    entry.name.reset();
    entry.provider.reset();
    entry.regions.clear();
    if (element.is_string()) {
        entry.id = canonical_model_or_region(element.text(), where);
        entry.spelling = trim_ascii(element.text());
        return;
    }
    if (!element.is_object()) {
        fail(where.str() + " must be a string or an object");
    }
    for (JsonNode member : element) {
        const std::string_view key = member.key();
        if (key != "id" && key != "name" && key != "provider" && key != "regions") {
            fail(where.str() + " has unknown key " + shown(key) + " (expected id, name, provider, regions)");
        }
    }
    JsonNode id = element;
    if (!element.find("id", id)) {
        fail(where.str() + ".id is required");
    }
    if (!id.is_string()) {
        fail(where.str() + ".id must be a string");
    }
    entry.id = canonical_model_or_region(id.text(), where.member("id"));
    entry.spelling = trim_ascii(id.text());
    entry.name = optional_text(element, "name", where);
    entry.provider = optional_text(element, "provider", where);
    JsonNode regions = element;
    if (element.find("regions", regions)) {
        const Where regions_where = where.member("regions");
        if (!regions.is_array()) {
            fail(regions_where.str() + " must be an array of strings");
        }
        std::size_t index = 0;
        UniqueList unique(entry.regions);
        for (JsonNode region : regions) {
            poll_interrupt();
            const Where region_where = regions_where.element(index++);
            if (!region.is_string()) {
                fail(region_where.str() + " must be a string");
            }
            unique.add(canonical_model_or_region(region.text(), region_where));
        }
    }
}

}  // namespace

std::vector<std::string> canonical_regions(const std::vector<std::string_view>& raw, const Where& path) {
    std::vector<std::string> regions;
    UniqueList unique(regions);
    for (std::size_t i = 0; i < raw.size(); ++i) {
        poll_interrupt();
        unique.add(canonical_model_or_region(raw[i], path.element(i)));
    }
    return regions;
}

NormalizedModels normalize_models(const std::vector<ModelSource>& sources,
                                  const std::vector<std::string>& default_regions) {
    std::size_t total = 0;
    for (const ModelSource& source : sources) {
        if (!source.entries.is_array()) {
            fail(source.path + " must be an array");
        }
        total += source.entries.size();
    }
    if (total > kMaxModelEntries) {
        fail_limit("too many model entries: " + std::to_string(total) + " (at most " +
                   std::to_string(kMaxModelEntries) + ")");
    }

    NormalizedModels out;
    out.models.reserve(total);
    std::unordered_map<std::string, std::size_t> index_by_id;
    index_by_id.reserve(total);
    // The regions of a model already merged with a later entry, for O(1)
    // lookups; built the first time the model has a duplicate.
    std::unordered_map<std::size_t, std::unordered_set<std::string>> merged_regions;
    // (model, region) pairs so far: bounded before they are copied, since
    // 10,000 entries each taking many default regions would otherwise
    // exhaust memory before any later limit is checked.
    std::size_t pairs = 0;
    auto count_pairs = [&pairs](std::size_t more) {
        pairs += more;
        if (pairs > kMaxModelRegionPairs) {
            fail_limit("too many (model, region) pairs: more than " + std::to_string(kMaxModelRegionPairs));
        }
    };
    Entry entry;
    for (const ModelSource& source : sources) {
        const Where path(source.path);
        std::size_t position = 0;
        for (JsonNode element : source.entries) {
            poll_interrupt();
            const std::size_t index = position++;
            const Where where = path.element(index);
            parse_entry(element, where, entry);
            const std::vector<std::string>& regions = entry.regions.empty() ? default_regions : entry.regions;

            auto [it, inserted] = index_by_id.emplace(entry.id, out.models.size());
            if (inserted) {
                Model model;
                model.id = std::move(entry.id);
                model.name_given = entry.name.has_value();
                model.name = entry.name ? std::move(*entry.name) : std::string(entry.spelling);
                model.provider = std::move(entry.provider);
                if (model.provider) {
                    model.provider_path = &source.path;
                    model.provider_index = index;
                }
                count_pairs(regions.size());
                model.regions = regions;
                out.models.push_back(std::move(model));
                continue;
            }

            ++out.duplicates_removed;
            Model& model = out.models[it->second];
            if (entry.provider) {
                if (!model.provider) {
                    model.provider = std::move(entry.provider);
                    model.provider_path = &source.path;
                    model.provider_index = index;
                } else if (*model.provider != *entry.provider) {
                    const Where earlier_path(*model.provider_path);
                    const Where earlier = earlier_path.element(model.provider_index);
                    fail(where.str() + ".provider " + shown(*entry.provider) + " conflicts with " + earlier.str() +
                         ".provider " + shown(*model.provider) + " for model " + shown(model.id));
                }
            }
            // "The first non-empty name given": until an entry gives one, the
            // first spelling of the id stands in for it.
            if (entry.name && !model.name_given) {
                model.name = std::move(*entry.name);
                model.name_given = true;
            }
            auto [merged, first_merge] = merged_regions.try_emplace(it->second);
            if (first_merge) {
                merged->second.insert(model.regions.begin(), model.regions.end());
            }
            for (const std::string& region : regions) {
                poll_interrupt();
                if (merged->second.insert(region).second) {
                    count_pairs(1);
                    model.regions.push_back(region);
                }
            }
        }
    }
    return out;
}

NormalizedModels normalize_model_tree(JsonNode models, const std::vector<std::string_view>& default_regions) {
    if (!models.is_array()) {
        fail("models must be a JSON array");
    }
    const std::vector<std::string> defaults = canonical_regions(default_regions, "default_regions");
    return normalize_models({ModelSource{"models", models}}, defaults);
}

json models_to_json(const std::vector<Model>& models) {
    json array = json::array();
    for (const Model& model : models) {
        poll_interrupt();
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
    const std::vector<eg_json_node> nodes = flatten(models);
    const std::vector<std::string_view> defaults(default_regions.begin(), default_regions.end());
    return models_to_json(normalize_model_tree(JsonNode(nodes.data(), 0), defaults).models).dump();
}

}  // namespace execguard::core
