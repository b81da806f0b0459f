// test/fuzz/fuzz_normalize_models.cpp
//
// libFuzzer target for eg_normalize_models(), the core behind
// execguard.normalize_models(models, default_regions).
//
// Input layout: JSON text for `models`, optionally followed by a line
// "---" and then one default region per line (raw: untrimmed, any case).
// So a corpus file is readable, and the fuzzer mutates regions too.
//
// On EG_OK the answer is checked against an independent reference model
// written from the contract (issue 2), and normalising the answer again
// must give the same answer (a fixed point). On error: see
// check_error() in fuzz_invariants.hpp.
#include "fuzz_invariants.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using execguard::fuzz::ascii_lower;
using execguard::fuzz::Call;
using execguard::fuzz::check_error;
using execguard::fuzz::is_canonical_model_or_region;
using execguard::fuzz::is_valid_utf8;
using execguard::fuzz::trimmed;
using nlohmann::json;

constexpr const char* kTarget = "fuzz_normalize_models";

void violated(const std::string& what) { execguard::fuzz::violated(kTarget, what); }

Call normalize(std::string_view models, const std::vector<std::string>& regions) {
    std::vector<eg_slice> slices;
    for (const std::string& r : regions) slices.push_back({r.data(), r.size()});
    Call call{};
    eg_text out{nullptr, 0};
    std::memset(call.error.message, 0x7f, sizeof(call.error.message));  // no stale NUL to hide behind
    call.status = eg_normalize_models({models.data(), models.size()}, slices.data(), slices.size(), &out, &call.error);
    if (call.status == EG_OK) {
        if (out.data == nullptr || out.data[out.len] != '\0') violated("EG_OK without a NUL-terminated result");
        call.out.assign(out.data, out.len);
        eg_text_free(&out);
        if (out.data != nullptr) violated("eg_text_free did not reset the text");
    } else if (out.data != nullptr) {
        violated("an error left a result behind (partial result)");
    }
    return call;
}

void add_unique(std::vector<std::string>& into, const std::string& value) {
    for (const std::string& v : into) {
        if (v == value) return;
    }
    into.push_back(value);
}

std::optional<std::string> optional_member(const json& entry, const char* key) {
    if (!entry.is_object() || !entry.contains(key) || !entry[key].is_string()) return std::nullopt;
    std::string text(trimmed(entry[key].get_ref<const std::string&>()));
    if (text.empty()) return std::nullopt;
    return text;
}

// The contract, restated: first-seen order, canonical ids, first non-empty
// name else the first spelling, the provider given, regions the union of all
// duplicates' regions with the defaults standing in for an entry with none.
json reference(const json& models, const std::vector<std::string>& raw_defaults) {
    std::vector<std::string> defaults;
    for (const std::string& r : raw_defaults) add_unique(defaults, ascii_lower(trimmed(r)));
    struct Expected {
        std::string id, name;
        bool name_given = false;
        std::optional<std::string> provider;
        std::vector<std::string> regions;
    };
    std::vector<Expected> out;
    std::unordered_map<std::string, std::size_t> index;
    for (const json& element : models) {
        const std::string& raw_id =
            element.is_string() ? element.get_ref<const std::string&>() : element["id"].get_ref<const std::string&>();
        const std::string id = ascii_lower(trimmed(raw_id));
        std::vector<std::string> regions;
        if (element.is_object() && element.contains("regions") && element["regions"].is_array()) {
            for (const json& r : element["regions"])
                add_unique(regions, ascii_lower(trimmed(r.get_ref<const std::string&>())));
        }
        if (regions.empty()) regions = defaults;
        const std::optional<std::string> name = optional_member(element, "name");
        const std::optional<std::string> provider = optional_member(element, "provider");
        auto [it, inserted] = index.emplace(id, out.size());
        if (inserted) {
            out.push_back({id, name ? *name : std::string(trimmed(raw_id)), name.has_value(), provider, regions});
            continue;
        }
        Expected& model = out[it->second];
        if (name && !model.name_given) {
            model.name = *name;
            model.name_given = true;
        }
        if (provider && !model.provider) model.provider = provider;
        for (const std::string& r : regions) add_unique(model.regions, r);
    }
    json array = json::array();
    for (const Expected& m : out) {
        array.push_back({{"id", m.id},
                         {"name", m.name},
                         {"provider", m.provider ? json(*m.provider) : json(nullptr)},
                         {"regions", m.regions}});
    }
    return array;
}

void check_shape(const json& out, std::size_t input_entries, bool defaults_given) {
    if (!out.is_array()) violated("result is not an array");
    if (out.size() > input_entries) violated("more models out than entries in");
    std::unordered_map<std::string, int> seen;
    for (const json& model : out) {
        if (!model.is_object() || model.size() != 4 || !model.contains("id") || !model.contains("name") ||
            !model.contains("provider") || !model.contains("regions")) {
            violated("model is not {id, name, provider, regions}: " + model.dump());
        }
        if (!model["id"].is_string() || !is_canonical_model_or_region(model["id"].get_ref<const std::string&>())) {
            violated("id is not canonical: " + model["id"].dump());
        }
        if (++seen[model["id"].get<std::string>()] > 1) violated("id appears twice: " + model["id"].dump());
        if (!model["name"].is_string() || model["name"].get_ref<const std::string&>().empty()) {
            violated("name is not a non-empty string: " + model.dump());
        }
        if (!model["provider"].is_null() &&
            (!model["provider"].is_string() || model["provider"].get_ref<const std::string&>().empty())) {
            violated("provider is neither null nor a non-empty string: " + model.dump());
        }
        if (!model["regions"].is_array()) violated("regions is not an array");
        if (defaults_given && model["regions"].empty()) violated("model has no regions although defaults were given");
        std::unordered_map<std::string, int> regions;
        for (const json& r : model["regions"]) {
            if (!r.is_string() || !is_canonical_model_or_region(r.get_ref<const std::string&>())) {
                violated("region is not canonical: " + r.dump());
            }
            if (++regions[r.get<std::string>()] > 1) violated("region listed twice: " + r.dump());
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::string_view models = input;
    std::vector<std::string> regions;
    const std::size_t split = input.find("\n---\n");
    if (split != std::string_view::npos) {
        models = input.substr(0, split);
        std::string_view rest = input.substr(split + 5);
        while (!rest.empty() && regions.size() < 8) {
            const std::size_t eol = rest.find('\n');
            regions.emplace_back(rest.substr(0, eol));
            rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
        }
    }

    const Call call = normalize(models, regions);
    if (call.status != EG_OK) {
        check_error(kTarget, call.status, call.error, {"models", "default_regions", "too many model entries"},
                    is_valid_utf8(input));
        return 0;
    }

    const json in = json::parse(models.begin(), models.end(), nullptr, false);
    if (in.is_discarded() || !in.is_array()) violated("EG_OK for input that is not a JSON array");
    const json out = json::parse(call.out, nullptr, false);
    if (out.is_discarded()) violated("result is not valid JSON: " + call.out);
    check_shape(out, in.size(), !regions.empty());

    const json expected = reference(in, regions);
    if (out != expected)
        violated("result differs from the reference\n  got:      " + out.dump() + "\n  expected: " + expected.dump());

    // Normalising a normalised list changes nothing.
    const Call again = normalize(call.out, regions);
    if (again.status != EG_OK) violated(std::string("normalising the result failed: ") + again.error.message);
    if (again.out != call.out) violated("not a fixed point:\n  first:  " + call.out + "\n  second: " + again.out);
    return 0;
}
