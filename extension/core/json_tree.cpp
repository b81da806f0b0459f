// extension/core/json_tree.cpp
//
// See json_tree.hpp.
#include "execguard/core/json_tree.hpp"

#include "execguard/core/interrupt.hpp"

#include <utility>

namespace execguard::core {

std::size_t JsonNode::size() const {
    std::size_t count = 0;
    for (Iterator it = begin(); it != end(); ++it) {
        poll_interrupt();
        ++count;
    }
    return count;
}

bool JsonNode::find(std::string_view key, JsonNode& out) const {
    for (JsonNode member : *this) {
        if (member.key() == key) {
            if (member.is_null()) {
                return false;
            }
            out = member;
            return true;
        }
    }
    return false;
}

namespace {

eg_slice slice_of(const std::string& text) { return eg_slice{text.data(), text.size()}; }

eg_json_kind kind_of(const nlohmann::json& value) {
    switch (value.type()) {
        case nlohmann::json::value_t::null:
        case nlohmann::json::value_t::discarded:
            return EG_JSON_NULL;
        case nlohmann::json::value_t::boolean:
            return value.get<bool>() ? EG_JSON_TRUE : EG_JSON_FALSE;
        case nlohmann::json::value_t::string:
            return EG_JSON_STRING;
        case nlohmann::json::value_t::array:
            return EG_JSON_ARRAY;
        case nlohmann::json::value_t::object:
            return EG_JSON_OBJECT;
        default:
            return EG_JSON_NUMBER;
    }
}

}  // namespace

std::vector<eg_json_node> flatten(const nlohmann::json& value) {
    std::vector<eg_json_node> nodes;
    // Open containers: their node index, and the members still to visit.
    struct Open {
        std::size_t index;
        nlohmann::json::const_iterator next;
        nlohmann::json::const_iterator last;
        bool object;
    };
    std::vector<Open> open;

    auto emit = [&](const nlohmann::json& item, const std::string* key) {
        eg_json_node node{kind_of(item), eg_slice{nullptr, 0}, eg_slice{nullptr, 0}, 0};
        if (key != nullptr) {
            node.key = slice_of(*key);
        }
        if (item.is_string()) {
            node.text = slice_of(item.get_ref<const std::string&>());
        }
        nodes.push_back(node);
        if (item.is_array() || item.is_object()) {
            open.push_back(Open{nodes.size() - 1, item.cbegin(), item.cend(), item.is_object()});
        } else {
            nodes.back().end = nodes.size();
        }
    };

    emit(value, nullptr);
    while (!open.empty()) {
        poll_interrupt();
        Open& top = open.back();
        if (!(top.next != top.last)) {
            nodes[top.index].end = nodes.size();
            open.pop_back();
            continue;
        }
        auto member = top.next;
        ++top.next;
        // emit() may grow `open` and so move `top`: nothing uses it after.
        emit(*member, top.object ? &member.key() : nullptr);
    }
    return nodes;
}

}  // namespace execguard::core
