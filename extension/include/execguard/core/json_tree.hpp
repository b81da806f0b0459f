// extension/include/execguard/core/json_tree.hpp
//
// A read-only view of a JSON document laid out as eg_json_node (see
// execguard/bridge.h): what the normalisation reads, whichever side built
// it. The PostgreSQL adapter fills it straight from a Jsonb, without
// printing and re-parsing text; flatten() fills it from an nlohmann::json
// for the text entry points, the unit tests and the fuzzers.
#pragma once

#include "execguard/core/guard.hpp"

#include "execguard/bridge.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string_view>
#include <vector>

namespace execguard::core {

class JsonNode {
public:
    JsonNode(const eg_json_node* nodes, std::size_t index) : nodes_(nodes), index_(index) {}

    eg_json_kind kind() const { return node().kind; }
    bool is_null() const { return kind() == EG_JSON_NULL; }
    bool is_string() const { return kind() == EG_JSON_STRING; }
    bool is_array() const { return kind() == EG_JSON_ARRAY; }
    bool is_object() const { return kind() == EG_JSON_OBJECT; }
    std::string_view text() const { return {node().text.data, node().text.len}; }
    std::string_view key() const { return {node().key.data, node().key.len}; }

    // Members of an array or object, in document order.
    class Iterator {
    public:
        Iterator(const eg_json_node* nodes, std::size_t index) : nodes_(nodes), index_(index) {}
        JsonNode operator*() const { return JsonNode(nodes_, index_); }
        Iterator& operator++() {
            index_ = nodes_[index_].end;
            return *this;
        }
        bool operator!=(const Iterator& other) const { return index_ != other.index_; }

    private:
        const eg_json_node* nodes_;
        std::size_t index_;
    };
    Iterator begin() const { return Iterator(nodes_, index_ + 1); }
    Iterator end() const { return Iterator(nodes_, node().end); }
    std::size_t size() const;

    // The member `key` of an object that is present and not null.
    bool find(std::string_view key, JsonNode& out) const;

private:
    const eg_json_node& node() const { return nodes_[index_]; }
    const eg_json_node* nodes_;
    std::size_t index_;
};

// `value` as eg_json_node, strings borrowed from `value` (which must
// outlive the nodes). Iterative: depth costs heap, never stack.
std::vector<eg_json_node> flatten(const nlohmann::json& value);

}  // namespace execguard::core
